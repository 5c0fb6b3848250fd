"""Atomic file writes: a file is either its old complete version or its new complete one.

Every artifact of a run (checkpoints, results, configs, curves) goes through these helpers,
so an interrupted command never leaves a half-written file behind. Bytes and text come from
:mod:`host.atomic` (standard library only, shared with the board); JSON and YAML are added here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from host.atomic import write_bytes, write_text

__all__ = ["write_bytes", "write_json", "write_text", "write_yaml"]


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as YAML atomically, keys in insertion order."""
    return write_text(path, yaml.safe_dump(obj, sort_keys=False))
