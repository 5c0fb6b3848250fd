"""accel.json's schema (host/design/schema.py): every damaged design is refused in one sentence naming the key."""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from host.design.spec import load_spec
from host.errors import HostError

#: Keys that describe, and that the host computes nothing from: removing one is allowed.
INFORMATIONAL = {"bit_width", "signed", "narrow_range", "rounding", "formula", "what", "argmax_in_hardware",
                 "tie_rule", "protocol", "student_checkpoint_sha256", "qonnx_sha256", "bitstream_sha256", "input_shape",
                 "output_shape", "order"}
#: Whole sections that describe; ``deployed``, when present, has its layers' names and weight bits checked.
INFORMATIONAL_SECTIONS = {"design", "board", "source", "deployed"}
DEPLOYED_CHECKED = {"layers", "name", "weight_bits"}


def _informational(path) -> bool:
    return (path[0] in INFORMATIONAL_SECTIONS or path[-1] in INFORMATIONAL or path == ("action", "output"))


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, dict):
                yield from _paths(value, prefix + (i,))


def _refusal(folder, data) -> str | None:
    (folder / "accel.json").write_text(json.dumps(data))
    try:
        load_spec(folder)
    except HostError as exc:
        return str(exc)
    return None


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@pytest.fixture(params=["discrete", "continuous", "pixels"])
def design(request, tmp_path):
    from tests.host.conftest import DATA

    folder = tmp_path / "design"
    shutil.copytree(DATA / request.param, folder)
    return folder, json.loads((folder / "accel.json").read_text())


def test_every_key_removed_in_turn_is_refused_in_one_sentence_naming_it(design):
    folder, data = design
    checked = 0
    for path in _paths(data):
        damaged = copy.deepcopy(data)
        parent = damaged
        for part in path[:-1]:
            parent = parent[part]
        del parent[path[-1]]
        why = _refusal(folder, damaged)
        if _informational(path):
            if why is not None:  # a deployed entry's weight_bits or name is checked when deployed is there
                assert path[0] == "deployed" and path[-1] in DEPLOYED_CHECKED, (path, why)
            continue
        assert why is not None, f"removing {_dotted(path)} was accepted"
        assert "\n" not in why and "Traceback" not in why
        assert f"'{_dotted(path)}" in why or (path == ("format_version",) and "format_version None" in why), (path, why)
        checked += 1
    assert checked >= 25


DATATYPE_FIELDS = ("finn_datatype", "input_dtype", "output_dtype", "weight_dtype", "acc_dtype")


def _datatype_paths(data):
    return [p for p in _paths(data) if p[-1] in DATATYPE_FIELDS]


@pytest.mark.parametrize("new", ["FLOAT99", "INT4", "UINT8", "BIPOLAR", "INT1", "float32", ""])
def test_every_datatype_changed_is_refused(design, new):
    """Every datatype field changed: an unknown one by the schema, a known but wrong one by the cross-checks
    (the stream against the layers, layer to layer, quantizer codes, deployed bits, weights and accumulator
    ranges). A thresholded layer's accumulator made wider computes the same; the FINN graph's check
    (make verify, make compare on a workstation) refuses that."""
    folder, data = design
    for path in _datatype_paths(data):
        damaged = copy.deepcopy(data)
        parent = damaged
        for part in path[:-1]:
            parent = parent[part]
        if parent[path[-1]] == new:
            continue
        parent[path[-1]] = new
        why = _refusal(folder, damaged)
        harmless = path[-1] == "acc_dtype" and not parent.get("no_activation") and new not in ("FLOAT99", "float32", "")
        if why is None:
            assert harmless, f"{_dotted(path)} = {new!r} was accepted"
            continue
        assert "\n" not in why and "Traceback" not in why
        if new in ("FLOAT99", "float32", ""):
            assert f"'{_dotted(path)}'" in why and "not a FINN datatype" in why, why


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["input"].__setitem__("finn_datatype", "INT4"), "folded_shape [1, 2, 2] of INT4 packs into"),
    (lambda d: d["layers"][0].__setitem__("input_dtype", "INT4"), "not the first layer's input datatype"),
    (lambda d: d["output"].__setitem__("finn_datatype", "FLOAT99"), "'output.finn_datatype': 'FLOAT99' is not a FINN datatype"),
    (lambda d: d["input"].__setitem__("packed_shape", [1, 1e7, 1e7]), "'input.packed_shape[1]' is 10000000.0"),
    (lambda d: d["input"].__setitem__("packed_shape", [1, 10_000_000, 10_000_000]), "'input.packed_shape[1]' is 10000000"),
    (lambda d: d["output"].update(normal_shape=[1, 60000, 60000], folded_shape=[1, 60000, 60000],
                                  packed_shape=[1, 60000, 60000]),
     "values per frame, more than"),
    (lambda d: d.__setitem__("format_version", "2"), "format_version '2', a string, not an integer"),
    (lambda d: d["dma"].__setitem__("output", d["dma"]["input"]), "name the same DMA"),
    (lambda d: d["dma"].__setitem__("input", "idma0; rm -rf"), "'dma.input'"),
    (lambda d: d.__setitem__("clock_ns", "10"), "'clock_ns' is '10'"),
    (lambda d: d["hashes"].__setitem__("weights_npz_sha256", 5), "'hashes.weights_npz_sha256' is 5"),
    (lambda d: d.__setitem__("layers", []), "'layers'"),
    (lambda d: d["layers"][0].__setitem__("mw", 7), "weight_dtype INT2 gives 448 weight bits, deployed counts 256"),
    (lambda d: (d.pop("deployed"), d["layers"][0].__setitem__("mw", 7)), "takes 7 × 32 weights"),
])
def test_the_audits_damaged_designs(discrete_design, tmp_path, edit, expected):
    folder = tmp_path / "design"
    shutil.copytree(discrete_design, folder)
    data = json.loads((folder / "accel.json").read_text())
    edit(data)
    why = _refusal(folder, data)
    assert why is not None and expected in why and "\n" not in why, why


def test_continuous_scale_and_bias_per_action_or_one_for_all(tmp_path):
    """output_scale and output_bias: one float, or one float per action; the host broadcasts them."""
    import numpy as np

    from tests.host.conftest import DATA

    folder = tmp_path / "design"
    shutil.copytree(DATA / "continuous", folder)
    data = json.loads((folder / "accel.json").read_text())
    scale = data["action"]["output_scale"]
    one = load_spec(folder).action_from_output(np.array([[10], [-20]]))
    data["action"].update(output_scale=[scale], output_bias=[0.5])
    (folder / "accel.json").write_text(json.dumps(data))
    per_action = load_spec(folder).action_from_output(np.array([[10], [-20]]))
    np.testing.assert_allclose(per_action, one + 0.5, rtol=1e-6)
    data["action"].update(output_scale=[scale, scale])
    why = _refusal(folder, data)
    assert why is not None and "action.output_scale holds 2 values for 1 action(s)" in why


def test_pickled_weights_are_refused_unread(tmp_path, discrete_design):
    """A weights.npz holding an object array (a pickle) is refused; np.load runs with allow_pickle=False."""
    import io

    import numpy as np

    from host.design.spec import sha256_file

    folder = tmp_path / "design"
    shutil.copytree(discrete_design, folder)
    with np.load(folder / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["MVAU_hls_0.weights"] = np.array([object()], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (folder / "weights.npz").write_bytes(buf.getvalue())
    data = json.loads((folder / "accel.json").read_text())
    data["hashes"]["weights_npz_sha256"] = sha256_file(folder / "weights.npz")
    why = _refusal(folder, data)
    assert why is not None and "pickled objects" in why
