"""A student prepared for a writable design (``make load-policy``), and writing it into the accelerator.

A policy package is a folder (``bitstreams/<design>/policies/<name>/``)::

    policy.json            the student (run, checkpoint hash), its input quantizer, its signature's hash,
                           every memory (layer, AXI-lite IP and offset, words, SHA-256) and the policy hash
    runtime_weights/*.dat  each memory's words in FINN's .dat format (finn-plus-driver's load_runtime_weights
                           reads the same files)
    export.json            the student's export record (where its Brevitas reference is)

:func:`load_package` checks it against the design (format, signature hash, each file's hash) and
returns the design's :class:`~host.design.spec.AccelSpec` as it computes with this student loaded:
the student's input quantizer, its arrays read back out of the words. :func:`write_policy` writes
the words over AXI-lite, reads them back, runs one flushing inference and returns a record whose
hash is of the words read back, so a report names the policy that actually ran. numpy and the
standard library only: this runs on the board.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from host.design.policy_memory import layer_array, memory_words, parse_dat, words_sha256
from host.design.spec import AccelSpec
from host.errors import HostError

POLICY_FILE = "policy.json"
POLICY_FORMAT_VERSION = 1
POLICIES_DIR = "policies"
DAT_DIR = "runtime_weights"
#: The most bytes a policy.json may have (a prepared one is about 3 kB).
MAX_POLICY_JSON = 64 << 10


@dataclass
class PolicyPackage:
    """A loaded package: its folder, ``policy.json``, each memory's words, and the design's spec with it loaded."""

    folder: Path
    data: dict[str, Any]
    words: dict[str, np.ndarray]
    spec: AccelSpec

    @property
    def name(self) -> str:
        """The policy's name (its folder's)."""
        return self.folder.name

    @property
    def sha256(self) -> str:
        """The policy hash (:func:`host.design.policy_memory.words_sha256` of its memories)."""
        return self.data["policy_sha256"]


def resolve_policy(design: Path, policy: str) -> Path:
    """A package folder from a name (``<design>/policies/<name>``) or a path."""
    path = Path(policy)
    if (path / POLICY_FILE).is_file():
        return path
    candidate = design / POLICIES_DIR / policy
    if (candidate / POLICY_FILE).is_file():
        return candidate
    raise HostError(f"policy '{policy}' not found (looked for {path / POLICY_FILE} and {candidate / POLICY_FILE}): "
                    f"make load-policy DESIGN={design.name} RUN=<run> prepares one")


def load_package(folder: Path, design: AccelSpec) -> PolicyPackage:
    """Read and check a policy package against a writable design (one sentence on the first problem)."""
    memories = _runtime(design)["memories"]
    folder = Path(folder)
    path = folder / POLICY_FILE
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise HostError(f"{path} cannot be read ({exc.strerror or exc})") from None
    files = {}
    for memory in memories:
        dat = folder / DAT_DIR / memory["dat_file"]
        if dat.is_file():
            files[memory["dat_file"]] = dat.read_bytes()
    return check_package(folder, text, files, design)


def package_files(package: PolicyPackage) -> list[bytes]:
    """The package as it travels (``make serve ALLOW_LOAD=1``): ``policy.json``, then each memory's
    ``.dat`` file in the design's order, byte for byte as on disk, so that every hash still holds."""
    files = [(package.folder / POLICY_FILE).read_bytes()]
    return files + [(package.folder / DAT_DIR / m["dat_file"]).read_bytes() for m in package.data["memories"]]


def largest_package(design: AccelSpec) -> list[int]:
    """The most bytes each of :func:`package_files` may have for ``design``: ``policy.json``, then each
    memory's ``.dat`` file (one 8-hex-digit word and a newline per word)."""
    return [MAX_POLICY_JSON] + [9 * int(m["words"]) for m in _runtime(design)["memories"]]


def design_policy(design: AccelSpec) -> dict[str, Any] | None:
    """The policy a writable design holds as built (its own student's words), as a record names it;
    None for a design whose weights are fixed in the fabric."""
    runtime = design.data.get("runtime_weights")
    if runtime is None:
        return None
    return {"name": f"{design.data.get('design') or design.folder.name} (its own student)",
            "policy_sha256": runtime["policy_sha256"]}


def switch_policy(backend, driver, package: PolicyPackage) -> dict[str, Any]:
    """Write ``package`` into the accelerator ``driver`` runs and compute with its spec from now on (a
    recovery writes it again); the record :func:`write_policy` returns, also kept as ``driver.loaded_policy``."""
    driver.use_spec(package.spec)
    record = write_policy(backend, driver, package)
    driver.loaded_policy = record
    driver.on_recover[:] = [lambda: write_policy(backend, driver, package)]
    return record


def _runtime(design: AccelSpec) -> dict[str, Any]:
    runtime = design.data.get("runtime_weights")
    if runtime is None:
        raise HostError(f"design {design.folder.name} is not writable (its accel.json has no runtime_weights): build "
                        "it with make estimate WEIGHTS=runtime")
    return runtime


def check_package(folder: Path, policy_json: bytes, dat_files: dict[str, bytes], design: AccelSpec) -> PolicyPackage:
    """A package from its files' bytes (``dat_files``: by ``.dat`` file name), checked against a writable
    design: format, signature hash, the memories, each file's hash and word count, the policy hash. ``folder`` names it
    (it need not exist: a package received over the network is checked in memory)."""
    runtime = _runtime(design)
    path = Path(folder) / POLICY_FILE
    try:
        data = json.loads(policy_json)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise HostError(f"{path} cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format_version") != POLICY_FORMAT_VERSION:
        raise HostError(f"{path} is not a policy package of format version {POLICY_FORMAT_VERSION}")
    if data.get("signature_sha256") != runtime["signature_sha256"]:
        raise HostError(f"policy {Path(folder).name} was prepared for another architecture than design "
                        f"{design.folder.name}'s (signature hash differs): prepare it again with make load-policy")
    layers = {layer["name"]: layer for layer in design.data["layers"]}
    expected = [(m["layer"], m["dat_file"], m["words"]) for m in runtime["memories"]]
    memories = data.get("memories")
    found = [(m.get("layer"), m.get("dat_file"), m.get("words")) for m in memories if isinstance(m, dict)] \
        if isinstance(memories, list) else None
    if found != expected:
        raise HostError(f"{path} lists other memories than design {design.folder.name} has")
    words: dict[str, np.ndarray] = {}
    arrays = dict(design.arrays)
    for memory in data["memories"]:
        dat = Path(folder) / DAT_DIR / memory["dat_file"]
        text = dat_files.get(memory["dat_file"])
        if text is None:
            raise HostError(f"policy {Path(folder).name} has no {DAT_DIR}/{memory['dat_file']}")
        if hashlib.sha256(text).hexdigest() != memory.get("sha256"):
            raise HostError(f"{dat} does not match {path} (its hash differs)")
        try:
            w = parse_dat(text.decode("ascii"))
        except UnicodeDecodeError:
            raise HostError(f"{dat} is not a .dat text of hex words") from None
        layer = layers[memory["layer"]]
        if len(w) != memory_words(layer):
            raise HostError(f"{dat} holds {len(w)} words, layer {layer['name']}'s memory {memory_words(layer)}")
        words[memory["layer"]] = w
        arrays[layer.get("weights") or layer["thresholds"]] = layer_array(layer, w)
    if words_sha256([(name, w) for name, w in words.items()]) != data.get("policy_sha256"):
        raise HostError(f"{path}'s policy hash is not that of its .dat files")
    transform = data.get("input", {}).get("transform") if isinstance(data.get("input"), dict) else None
    if not isinstance(transform, dict) or transform.get("kind") != design.input_transform.get("kind"):
        raise HostError(f"{path} has no input transform of the design's kind ({design.input_transform.get('kind')})")
    spec_data = json.loads(json.dumps(design.data))
    spec_data["input"]["transform"] = transform
    return PolicyPackage(Path(folder), data, words, replace(design, data=spec_data, arrays=arrays))


def _write_block(regs, offset: int, words: np.ndarray) -> np.ndarray:
    """Write ``words`` at byte ``offset`` of an IP's AXI-lite region and read them back."""
    start = offset // 4
    array = getattr(regs, "array", None)
    if array is not None:  # pynq's MMIO.array (a uint32 view of the region): one slice each way
        array[start:start + len(words)] = words
        return np.array(array[start:start + len(words)], dtype=np.uint32)
    for i, word in enumerate(words.tolist()):
        regs.write(offset + 4 * i, int(word))
    return np.array([regs.read(offset + 4 * i) for i in range(len(words))], dtype=np.uint32)


def write_policy(backend, driver, package: PolicyPackage) -> dict[str, Any]:
    """Write a package's memories into the accelerator over AXI-lite, read each back, and run one
    inference to flush the weight streams (FINN's decoupled weight memories stream through FIFOs that
    still hold the old weights); return the record a report carries. Raises :class:`HostError` when a
    memory reads back other words than were written."""
    read_back = []
    for memory in package.data["memories"]:
        regs = backend.ip(memory["ip"])
        wrote = package.words[memory["layer"]]
        got = _write_block(regs, int(memory["offset"]), wrote)
        if not np.array_equal(got, wrote):
            bad = int(np.flatnonzero(got != wrote)[0])
            raise HostError(f"the memory of {memory['layer']} ({memory['ip']}) reads back {int(got[bad]):#010x} at word "
                            f"{bad}, {int(wrote[bad]):#010x} was written")
        read_back.append((memory["layer"], got))
    driver.execute(np.zeros((1, driver.spec.obs_dim), dtype=np.float32))
    digest = words_sha256(read_back)
    if digest != package.sha256:
        raise HostError(f"the accelerator holds policy {digest[:12]}, not {package.name}'s {package.sha256[:12]}")
    return {"name": package.name, "policy_sha256": digest, "read_back": "equal to what was written",
            "words": int(sum(len(w) for _, w in read_back)), "memories": len(read_back), "flushed": True,
            "student": package.data.get("student")}
