"""host.datapath.packing against FINN's own packing (finn.util.data_packing), round trips, and refusals.

The FINN comparisons skip where finn is not installed (the board-like environment); the rest
runs everywhere, including a comparison with a plain-Python packer written from FINN's layout.
FINN's driver packs and unpacks with reverse_inner=True, reverse_endian=True, as here.
"""

from __future__ import annotations

import inspect
import struct

import numpy as np
import pytest

from host.datapath.packing import DataType, pack, packed_shape, parse_datatype, unpack, unpack_codes, validate_values

INT_NAMES = [f"{prefix}{w}" for prefix in ("INT", "UINT") for w in range(1, 33)]
FIXED_NAMES = ["FIXED<2,1>", "FIXED<5,1>", "FIXED<8,4>", "FIXED<12,4>", "FIXED<16,8>", "FIXED<16,15>",
               "FIXED<24,10>", "FIXED<32,16>", "FIXED<32,28>"]
ALL_NAMES = INT_NAMES + ["BINARY", "BIPOLAR", "TERNARY", "FLOAT32"] + FIXED_NAMES
ARRAYS_PER_DATATYPE = 60


def random_shape(rng: np.random.Generator) -> tuple[int, ...]:
    ndim = int(rng.integers(1, 5))
    outer = [int(d) for d in rng.integers(1, 5, size=ndim - 1)]
    return tuple(outer) + (int(rng.integers(1, 41)),)


def random_values(rng: np.random.Generator, dt: DataType, shape: tuple[int, ...]) -> np.ndarray:
    """Representable float32 values of ``dt``, extremes included often."""
    if dt.kind == "float":
        values = rng.normal(0.0, 1e3, shape)
        values[rng.random(shape) < 0.1] = 0.0
        return values.astype(np.float32)
    if dt.kind == "bipolar":
        return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=shape)
    if dt.kind == "ternary":
        return rng.choice(np.array([-1.0, 0.0, 1.0], dtype=np.float32), size=shape)
    codes = rng.integers(dt.min_code, dt.max_code + 1, size=shape, dtype=np.int64)
    extremes = rng.random(shape)
    codes[extremes < 0.1] = dt.min_code
    codes[extremes > 0.9] = dt.max_code
    values = (codes * dt.scale).astype(np.float32)
    # Wide codes round to float32 and may round up past the top of the range.
    top = np.nextafter(np.float32((dt.max_code + 1) * dt.scale), np.float32(0))
    return np.minimum(values, top)


def native_container(dt: DataType) -> np.dtype | None:
    """The numpy dtype whose values FINN packs by byte views (its fast path), if any."""
    if dt.kind == "int" and dt.bitwidth in (8, 16, 32):
        return np.dtype(("int" if dt.signed else "uint") + str(dt.bitwidth))
    return None


def float_bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)


def reference_pack(values: np.ndarray, dt: DataType) -> np.ndarray:
    """Plain-Python packing: one little-endian integer per row, element i at bits [i*w, (i+1)*w)."""
    n, width = values.shape[-1], dt.bitwidth
    n_bytes = (n * width + 7) // 8
    rows = []
    for row in values.reshape(-1, n).tolist():
        word = 0
        for i, value in enumerate(row):
            if dt.kind == "float":
                code = struct.unpack("<I", struct.pack("<f", value))[0]
            elif dt.kind == "bipolar":
                code = 1 if value > 0 else 0
            else:
                code = round(value / dt.scale) % (1 << width)  # two's complement
            word |= code << (i * width)
        rows.append(list(word.to_bytes(n_bytes, "little")))
    return np.array(rows, dtype=np.uint8).reshape(values.shape[:-1] + (n_bytes,))


def reference_codes(packed: np.ndarray, dt: DataType, shape: tuple[int, ...]) -> np.ndarray:
    """Plain-Python unpacking to signed integer codes (for FLOAT32: the float's bit pattern)."""
    n, width = shape[-1], dt.bitwidth
    codes = []
    for row in packed.reshape(-1, (n * width + 7) // 8):
        word = int.from_bytes(bytes(row), "little")
        for i in range(n):
            code = (word >> (i * width)) & ((1 << width) - 1)
            if dt.kind == "bipolar":
                code = 2 * code - 1
            elif dt.kind == "ternary":
                code = -1 if code == 3 else code
            elif dt.signed and dt.kind != "float" and code >> (width - 1):
                code -= 1 << width
            codes.append(code)
    return np.array(codes, dtype=np.int64).reshape(shape)


@pytest.fixture(scope="module")
def finn_packing():
    return pytest.importorskip("finn.util.data_packing")


@pytest.fixture(scope="module")
def qonnx_datatype():
    return pytest.importorskip("qonnx.core.datatype").DataType


def fast_modes(finn_function) -> list[dict]:
    """FINN releases before finn-plus 1.6 took a fast_mode flag; 1.6.1 picks its fast paths itself."""
    if "fast_mode" in inspect.signature(finn_function).parameters:
        return [{"fast_mode": True}, {"fast_mode": False}]
    return [{}]


def finn_pack(finn_packing, values: np.ndarray, finn_dt, **mode) -> np.ndarray:
    """What FINN's PYNQ driver sends to the input DMA."""
    pack_values = finn_packing.finnpy_to_packed_bytearray
    return pack_values(values, finn_dt, reverse_inner=True, reverse_endian=True, **mode)


def finn_unpack(finn_packing, packed: np.ndarray, finn_dt, shape: tuple[int, ...], **mode) -> np.ndarray:
    """What FINN's PYNQ driver makes of the output DMA's bytes."""
    packed = np.ascontiguousarray(packed)  # as a pynq buffer is
    if finn_dt.is_fixed_point() and finn_dt.bitwidth() in (8, 16):
        # FINN's 8/16-bit fast path views these bytes as float32 (FIXED's numpy type) and fails;
        # compare with the general path that FINN takes for every other fixed-point width.
        prepared = finn_packing.prepare_values(packed, finn_dt, shape, True, True)
        return finn_packing.data_prepared_to_finnpy_fixed(prepared, finn_dt)
    unpack_bytes = finn_packing.packed_bytearray_to_finnpy
    return unpack_bytes(packed, finn_dt, shape, reverse_inner=True, reverse_endian=True, **mode)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_pack_and_unpack_match_finn_on_random_arrays(name, finn_packing, qonnx_datatype):
    dt, finn_dt = parse_datatype(name), qonnx_datatype[name]
    rng = np.random.default_rng(ALL_NAMES.index(name))
    container = native_container(dt)
    for _ in range(ARRAYS_PER_DATATYPE):
        shape = random_shape(rng)
        values = random_values(rng, dt, shape)
        inputs = [values] if container is None else [values, values.astype(container)]
        for x in inputs:
            packed = pack(x, name)
            assert packed.dtype == np.uint8 and packed.shape == packed_shape(shape, name)
            for mode in fast_modes(finn_packing.finnpy_to_packed_bytearray):
                assert np.array_equal(packed, finn_pack(finn_packing, x, finn_dt, **mode)), (name, x, mode)
        # Random bytes too: every bit pattern, padding bits set, NaN payloads for FLOAT32.
        for buffer in (packed, rng.integers(0, 256, size=packed.shape, dtype=np.uint8)):
            unpacked = unpack(buffer, name, shape)
            assert unpacked.dtype == np.float32 and unpacked.shape == shape
            for mode in fast_modes(finn_packing.packed_bytearray_to_finnpy):
                expected = finn_unpack(finn_packing, buffer, finn_dt, shape, **mode)
                assert np.array_equal(float_bits(unpacked), float_bits(expected)), (name, buffer, mode)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_pack_and_unpack_match_a_plain_python_reference(name):
    dt = parse_datatype(name)
    rng = np.random.default_rng(2000 + ALL_NAMES.index(name))
    for _ in range(ARRAYS_PER_DATATYPE // 4):
        shape = random_shape(rng)
        values = random_values(rng, dt, shape)
        packed = pack(values, name)
        assert np.array_equal(packed, reference_pack(values, dt)), (name, values)
        buffer = rng.integers(0, 256, size=packed.shape, dtype=np.uint8)
        expected = reference_codes(buffer, dt, shape)
        if dt.kind == "float":
            assert np.array_equal(float_bits(unpack(buffer, name, shape)), expected)
        else:
            assert np.array_equal(unpack_codes(buffer, name, shape), expected)
            if dt.kind != "fixed":
                assert np.array_equal(unpack(buffer, name, shape), expected.astype(np.float32))


@pytest.mark.parametrize("name", ["INT4", "UINT3", "BIPOLAR", "FIXED<6,3>", "INT8", "FLOAT32"])
def test_scalars_and_1d_rows_match_finn(name, finn_packing, qonnx_datatype):
    finn_dt = qonnx_datatype[name]
    for x in (np.float32(1), np.ones(3, dtype=np.float32), np.ones(8, dtype=np.float32)):
        expected = finn_pack(finn_packing, x, finn_dt)
        assert np.array_equal(pack(x, name), expected)
        shape = np.atleast_1d(x).shape
        assert np.array_equal(unpack(expected, name, shape),
                              finn_unpack(finn_packing, expected, finn_dt, shape))


@pytest.mark.parametrize("name", ALL_NAMES + ["UINT1"])
def test_datatype_matches_qonnx(name, qonnx_datatype):
    dt, ref = parse_datatype(name), qonnx_datatype[name]
    assert dt.name == ref.name
    assert (dt.bitwidth, dt.signed, dt.is_integer, dt.is_fixed_point) == (
        ref.bitwidth(), ref.signed(), ref.is_integer(), ref.is_fixed_point())
    assert (dt.min_value, dt.max_value) == (ref.min(), ref.max())
    if ref.is_fixed_point():
        assert (dt.scale, dt.int_bits) == (ref.scale_factor(), ref.int_bits())


@pytest.mark.parametrize("name", ALL_NAMES)
def test_unpack_gives_packed_values_back(name):
    dt = parse_datatype(name)
    rng = np.random.default_rng(1000 + ALL_NAMES.index(name))
    for _ in range(ARRAYS_PER_DATATYPE // 2):
        shape = random_shape(rng)
        values = random_values(rng, dt, shape)
        packed = pack(values, name)
        assert np.array_equal(unpack(packed, name, shape), values)
        assert np.array_equal(unpack(packed.tobytes(), name, shape), values)
        if dt.kind != "float":
            assert np.array_equal(unpack_codes(packed, name, shape) * dt.scale, values)


def test_wide_integers_are_exact_where_float32_is_not():
    # FINN's packer goes through float32, which rounds 2**24 + 1; pack() keeps integers exact
    # and unpack_codes() returns them exactly (unpack() gives float32, as FINN does).
    values = np.array([[2**24 + 1, -(2**31), 2**31 - 1]], dtype=np.int64)
    assert np.array_equal(unpack_codes(pack(values, "INT32"), "INT32", (1, 3)), values)
    big = np.array([2**32 - 1, 2**24 + 3], dtype=np.uint64)
    assert np.array_equal(unpack_codes(pack(big, "UINT32"), "UINT32", 2), big.astype(np.int64))


def test_known_layouts():
    # Element i sits at bits [i*w, (i+1)*w) of one little-endian word per row, padded on top.
    assert pack([[1, -2, 7]], "INT4").tolist() == [[0xE1, 0x07]]
    assert pack([[3, 0, 1]], "UINT2").tolist() == [[0b010011]]
    assert pack([[1, -1, -1, 1, 1, 1, 1, 1, -1]], "BIPOLAR").tolist() == [[0b11111001, 0]]
    assert pack([[-1, 0, 1]], "TERNARY").tolist() == [[0b010011]]
    assert pack([[-300, 5]], "INT16").tolist() == [[0xD4, 0xFE, 5, 0]]
    assert pack([[1.5, -2.25]], "FIXED<8,4>").tolist() == [[0x18, 0xDC]]
    assert pack([[1.0]], "FLOAT32").tolist() == [[0, 0, 0x80, 0x3F]]


def test_pack_reshapes_to_the_folded_shape_and_writes_into_a_buffer():
    values = np.arange(8, dtype=np.float32).reshape(1, 8)
    packed = pack(values, "UINT4", folded_shape=(1, 2, 4))
    assert packed.shape == packed_shape((1, 2, 4), "UINT4") == (1, 2, 2)
    buffer = np.zeros((1, 2, 2), dtype=np.uint8)
    assert pack(values, "UINT4", (1, 2, 4), out=buffer) is buffer
    assert np.array_equal(buffer, packed)
    with pytest.raises(ValueError, match="uint8 with 4 bytes"):
        pack(values, "UINT4", out=np.zeros(3, dtype=np.uint8))


REFUSED = [
    ("INT4", 8), ("INT4", -9), ("INT4", 1.5), ("UINT2", -1), ("UINT2", 4), ("BINARY", 2), ("INT1", 1),
    ("BIPOLAR", 0), ("BIPOLAR", 0.5), ("TERNARY", 2), ("TERNARY", 0.5), ("FIXED<8,4>", 0.03),
    ("FIXED<8,4>", 8.0), ("FIXED<8,4>", -8.0625), ("UINT32", 2**32), ("INT32", 2**31), ("INT32", 1e30),
    ("INT8", np.nan), ("INT8", np.inf), ("UINT8", -np.inf), ("FIXED<8,4>", np.nan), ("BIPOLAR", np.nan),
    ("TERNARY", np.inf), ("FLOAT32", np.nan), ("FLOAT32", np.inf), ("FLOAT32", -np.inf), ("FLOAT32", 1e39),
]


@pytest.mark.parametrize("name, bad", REFUSED)
def test_unrepresentable_values_are_refused_in_one_sentence(name, bad):
    values = np.array([[0.0 if name != "BIPOLAR" else 1.0] * 3] * 2)
    values[1, 2] = bad
    with pytest.raises(ValueError) as refusal:
        validate_values(values, name)
    message = str(refusal.value)
    assert f"at index (1, 2) is not representable as {parse_datatype(name).name} (" in message
    assert message.endswith(").") and "\n" not in message and message.count(". ") == 0
    with pytest.raises(ValueError, match="not representable"):
        pack(values, name)


@pytest.mark.parametrize("name", ["INT8", "UINT4", "BIPOLAR"])
def test_integer_containers_are_range_checked(name):
    with pytest.raises(ValueError, match="index \\(2,\\)"):
        pack(np.array([1, 1, 200], dtype=np.uint8), name)


def test_unchecked_packing_keeps_the_low_bits():
    assert np.array_equal(pack([[9]], "INT4", check=False), pack([[-7]], "INT4"))


@pytest.mark.parametrize("name", ["INT0", "INT33", "UINT64", "FIXED<8,8>", "FIXED<8,0>", "FIXED<40,8>",
                                  "FLOAT16", "float32", "INT 4", ""])
def test_unknown_datatypes_are_refused(name):
    with pytest.raises(ValueError, match="FINN datatype"):
        parse_datatype(name)


def test_bad_buffers_and_inputs_are_refused():
    with pytest.raises(ValueError, match="takes 2 bytes, got 3"):
        unpack(np.zeros(3, dtype=np.uint8), "INT4", (1, 3))
    with pytest.raises(ValueError, match="uint8"):
        unpack(np.zeros(2, dtype=np.int16), "INT4", (1, 3))
    with pytest.raises(ValueError, match="real numbers"):
        pack(np.array(["1"]), "INT4")
    with pytest.raises(TypeError, match="name"):
        parse_datatype(4)
    with pytest.raises(ValueError, match="FLOAT32"):
        unpack_codes(np.zeros(4, dtype=np.uint8), "FLOAT32", 1)
