"""A progress bar for the comparison's episodes: tqdm where it is installed, a one-line counter otherwise.

Both write to stderr and only to a terminal, so reports and logs stay clean; the fallback needs
nothing beyond the standard library, for a board image without tqdm.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def episode_progress(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)``, which counts ``k`` more finished episodes of ``total``."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=total, desc=what, unit="episode", disable=None, file=sys.stderr, leave=False)
        try:
            yield bar.update
        finally:
            bar.close()
        return
    shown = sys.stderr.isatty()
    done, start = [0], time.monotonic()

    def advance(k: int) -> None:
        done[0] += k
        if shown:
            rate = done[0] / max(time.monotonic() - start, 1e-9)
            print(f"\r{what}: {done[0]}/{total} episodes ({rate:.1f}/s)", end="", file=sys.stderr, flush=True)

    try:
        yield advance
    finally:
        if shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
