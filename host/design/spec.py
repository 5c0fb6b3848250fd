"""Reading a design folder's ``accel.json`` and ``weights.npz`` (format version 2), with checks.

Version 2 (this one) describes how a float observation becomes the accelerator's input
(``input.transform``: the student's input quantizer run on the host, or ``none`` for a
float-input design) and the bits the accelerator stores (``deployed``). The host refuses, in
one sentence: another format version, a ``weights.npz`` or bitstream
whose hash is not the one ``accel.json`` names, a layer it does not know, an ``accel.json`` its
schema refuses (:mod:`host.design.schema`: keys, types, datatypes, bounded shapes, consistency),
arrays in ``weights.npz`` that do not fit their layers, and an environment whose observations
do not fit the accelerator's input. ``weights.npz`` is read without unpickling.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from host.errors import HostError
from host.datapath.quantizer import InputQuantizer, binary_frames, finite_float32
from host.design.schema import ACCEL_FORMAT_VERSION, MVAULayer, ThresholdingLayer, datatype_range, validate_accel
ACCEL_FILE = "accel.json"
WEIGHTS_FILE = "weights.npz"
BITFILE = "finn-accel.bit"
HWHFILE = "finn-accel.hwh"
TEACHER_FILE = "teacher.npz"
KNOWN_LAYERS = ("ConvolutionInputGenerator", "Thresholding", "MVAU", "LabelSelect")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class AccelSpec:
    """A design as the host sees it: the parsed ``accel.json`` and the arrays of ``weights.npz``."""

    folder: Path
    data: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def env_id(self) -> str:
        """The environment the design's policy was trained on."""
        return self.data["env_id"]

    @property
    def discrete(self) -> bool:
        """True when the accelerator returns an action index (LabelSelect)."""
        return self.data["action"]["kind"] == "discrete"

    @property
    def argmax_on_host(self) -> bool:
        """True for a discrete design whose accelerator returns the integer logits (no LabelSelect):
        the host takes their argmax (``IMPL=rtl``; FINN's LabelSelect exists only in HLS)."""
        return self.discrete and self.data["layers"][-1]["op"] != "LabelSelect"

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """One observation's shape: ``(obs_dim,)``, or a frame's ``(height, width, channels)``."""
        return self._obs_shape

    @property
    def obs_dim(self) -> int:
        """Values per observation the accelerator takes."""
        return self._obs_dim

    @property
    def pixels(self) -> bool:
        """Whether the design takes frames (height × width × channels)."""
        return len(self._obs_shape) == 3

    def rows(self, obs: np.ndarray) -> np.ndarray:
        """A batch (or one) of observations as rows ``(n, obs_dim)``; a frame of another shape is refused."""
        x = np.asarray(obs)
        if len(self._obs_shape) == 3 and x.shape[-3:] != self._obs_shape:
            raise HostError(f"a frame of shape {x.shape[-3:] if x.ndim >= 3 else x.shape} is not the "
                            f"{'×'.join(map(str, self.obs_shape))} (height × width × channels) frame design "
                            f"{self.folder.name} takes")
        if x.size % self._obs_dim:
            raise HostError(f"observations of {x.size} values in all: design {self.folder.name} takes "
                            f"{self._obs_dim} per observation")
        return x.reshape(-1, self._obs_dim)

    @property
    def bitfile(self) -> Path:
        """Where the design's bitstream is (it may not exist)."""
        return self.folder / BITFILE

    @property
    def input_transform(self) -> dict[str, Any]:
        """accel.json's ``input.transform``: how a float observation becomes the accelerator's input."""
        return self.data["input"]["transform"]

    def preprocess(self, obs: np.ndarray) -> np.ndarray:
        """The accelerator's input for a batch of float observations ``(n, obs_dim)``.

        Integer-input designs: the student's input quantizer, run here (:mod:`host.datapath.quantizer`);
        float-input designs: the observations as float32, with −0.0 sent as +0.0 — FINN's RTL
        thresholding compares −0.0 *below* a +0.0 threshold where IEEE (numpy, every Python
        level) says equal, so the fabric is never shown a −0.0 (tests/test_hw_build.py proves
        both at the RTL level). NaN and infinity are refused.
        """
        if self._quantizer is not None:
            return self._quantizer(obs)
        if self.input_transform["kind"] == "binary":
            return binary_frames(obs)
        return finite_float32(obs) + np.float32(0.0)  # IEEE: -0.0 + 0.0 = +0.0, every other value unchanged

    def __post_init__(self) -> None:
        self._obs_shape = tuple(int(d) for d in self.data["input"]["normal_shape"][1:])
        self._obs_dim = int(np.prod(self._obs_shape))  # both read on every call: made once
        kind = self.input_transform.get("kind")
        if kind not in ("quantize", "none", "binary"):
            raise HostError(f"{self.folder / ACCEL_FILE} names an input transform '{kind}' this host does not know")
        self._quantizer = InputQuantizer.from_transform(self.input_transform) if kind == "quantize" else None

    def action_from_output(self, values: np.ndarray) -> np.ndarray:
        """Turn the accelerator's unpacked output rows into actions (see ``accel.json``'s action)."""
        action = self.data["action"]
        if self.argmax_on_host:  # np.argmax: the first maximum, LabelSelect's lowest-index tie rule
            return np.argmax(values.reshape(len(values), -1), axis=1).astype(np.int64)
        if self.discrete:
            return values.reshape(len(values), -1)[:, 0].astype(np.int64)
        # output_scale and output_bias: one float for every action, or one per action (broadcast over the rows)
        out = values.reshape(len(values), -1).astype(np.float64) * np.asarray(action["output_scale"], dtype=np.float64)
        if action.get("output_bias") is not None:
            out = out + np.asarray(action["output_bias"], dtype=np.float64)
        return np.clip(out, action["low"], action["high"]).astype(np.float32)

    def output_step(self) -> float:
        """The largest step between two continuous actions the hardware can give (0 for discrete)."""
        scale = self.data["action"].get("output_scale")
        return 0.0 if scale is None else float(np.max(np.abs(np.asarray(scale, dtype=np.float64))))


def load_spec(folder: str | Path, *, require_bitstream: bool = False) -> AccelSpec:
    """Load and check a design folder (raises :class:`HostError` with one sentence)."""
    folder = Path(folder)
    path = folder / ACCEL_FILE
    if not path.is_file():
        raise HostError(f"{folder} is not a design folder: it has no {ACCEL_FILE} (make estimate DESIGN=... writes it)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HostError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HostError(f"{path} is not a JSON object")
    version = data.get("format_version")
    if version != ACCEL_FORMAT_VERSION or type(version) is not int:
        shown = f"format_version {version!r}, a string, not an integer" if isinstance(version, str) \
            else f"format_version {version}"
        raise HostError(f"{path} has {shown}; this host reads version {ACCEL_FORMAT_VERSION}: "
                        f"re-run make estimate DESIGN={folder.name} with this version of the flow")
    ops = [layer.get("op") for layer in data.get("layers", []) if isinstance(layer, dict)] \
        if isinstance(data.get("layers"), list) else []
    if None in ops:
        raise HostError(f"{path} is refused: key 'layers[{ops.index(None)}].op' is missing")
    unknown = [str(op) for op in ops if op not in KNOWN_LAYERS]
    if unknown:
        raise HostError(f"{path} names layers this host cannot emulate: {', '.join(unknown)}")
    try:
        model = validate_accel(data)
    except ValueError as exc:
        raise HostError(f"{path} is refused: {exc}") from None
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise HostError(f"design {folder.name} has no {WEIGHTS_FILE}")
    if sha256_file(weights) != data["hashes"]["weights_npz_sha256"]:
        raise HostError(f"{weights} does not match {path} (its hash differs): the two come from different builds")
    bit = folder / BITFILE
    if bit.exists():
        if data["hashes"].get("bitstream_sha256") != sha256_file(bit):
            raise HostError(f"{bit} does not match {path} (its hash differs): rerun make bitstream or copy the matching pair")
    elif require_bitstream:
        raise HostError(f"design {folder.name} has no {BITFILE}: build it with make bitstream where Vivado is installed")
    try:
        with np.load(weights, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise HostError(f"{weights} is corrupt or holds pickled objects: {exc}") from None
    check_arrays(model, arrays, weights)
    return AccelSpec(folder, data, arrays)


def check_arrays(model, arrays: dict[str, np.ndarray], weights: Path) -> None:
    """Refuse ``weights.npz`` arrays that do not fit accel.json's layers: missing, of another shape, not
    integers where the fabric stores integers, or outside the layer's weight datatype."""
    def need(key: str, rows: int, what: str) -> np.ndarray:
        if key not in arrays:
            raise HostError(f"{weights} has no array {key}, which accel.json's layers name")
        array = arrays[key]
        if array.ndim != 2 or array.shape[0] != rows or array.dtype.kind not in "iuf":
            raise HostError(f"{weights}: array {key} has shape {array.shape} ({array.dtype}), but {what}")
        if not np.isfinite(array).all():
            raise HostError(f"{weights}: array {key} holds NaN or infinity")
        return array

    for layer in model.layers:
        if isinstance(layer, MVAULayer):
            w = need(layer.weights, layer.mw, f"layer {layer.name} takes {layer.mw} × {layer.mh} weights")
            _, lo, hi = datatype_range(layer.weight_dtype)
            if w.shape[1] != layer.mh or not np.array_equal(w, np.round(w)) or w.min() < lo or w.max() > hi:
                raise HostError(f"{weights}: array {layer.weights} is not {layer.mw} × {layer.mh} integers of "
                                f"{layer.weight_dtype} ({lo}..{hi}), as accel.json's layer {layer.name} says")
            if not (layer.binary_xnor or {"BIPOLAR", "FLOAT32"} & {layer.input_dtype, layer.weight_dtype}):
                _, xlo, xhi = datatype_range(layer.input_dtype)
                w64 = w.astype(np.int64)
                top = np.maximum(w64 * xlo, w64 * xhi).sum(axis=0).max()
                bottom = np.minimum(w64 * xlo, w64 * xhi).sum(axis=0).min()
                _, alo, ahi = datatype_range(layer.acc_dtype)
                if bottom < alo or top > ahi:
                    raise HostError(f"layer {layer.name}'s acc_dtype {layer.acc_dtype} ({alo}..{ahi}) cannot hold its "
                                    f"accumulators ({bottom}..{top} for {layer.input_dtype} inputs and these weights)")
            if layer.thresholds is not None:
                need(layer.thresholds, layer.mh, f"layer {layer.name} has {layer.mh} output channels")
        elif isinstance(layer, ThresholdingLayer):
            need(layer.thresholds, layer.channels, f"layer {layer.name} has {layer.channels} channels")


def check_env_fits(spec: AccelSpec, observation_space, action_space) -> None:
    """Refuse an environment whose spaces differ from the design's."""
    shape = tuple(getattr(observation_space, "shape", ()) or ())
    if shape != spec.obs_shape:
        def kind(dims: tuple) -> str:
            return {1: "flat observations", 3: "frames (height × width × channels)"}.get(len(dims), "observations")

        raise HostError(f"the environment's observations have shape {shape}, {kind(shape)}, but design "
                        f"{spec.folder.name} takes {kind(spec.obs_shape)} of shape {spec.obs_shape} "
                        f"(it was built for {spec.env_id})")
    n = getattr(action_space, "n", None)
    if spec.discrete and (n is None or int(n) != int(spec.data["action"]["n"])):
        raise HostError(f"the environment's action space {action_space} does not fit design {spec.folder.name}, "
                        f"which chooses among {spec.data['action']['n']} actions")
    if not spec.discrete and tuple(getattr(action_space, "shape", ()) or ()) != (int(spec.data["action"]["n"]),):
        raise HostError(f"the environment's action space {action_space} does not fit design {spec.folder.name}")
