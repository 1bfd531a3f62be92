"""Property-based tests: the IDX reader and the .npz loader, fed random and mutated bytes, either
return data or raise our own AevbError; no other exception, hang or crash gets out."""

import gzip
import io
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aevb import data as D
from aevb.errors import AevbError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """`base` with a few random edits: bit flips, overwritten, inserted or deleted runs, a cut."""
    b = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(b) - 1, 0)))
        if kind == "flip" and b:
            b[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            run = draw(st.binary(min_size=1, max_size=8))
            b[at : at + len(run)] = run
        elif kind == "insert":
            b[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del b[at : at + draw(st.integers(1, 16))]
        else:
            del b[at:]
    return bytes(b)


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
            np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}[array.dtype]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


IDX_DTYPES = st.sampled_from(["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
IDX_ARRAYS = IDX_DTYPES.flatmap(lambda dt: hnp.arrays(
    np.dtype(dt), hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))


def parses_or_refuses(raw: bytes, path=None) -> np.ndarray | None:
    try:
        return D.read_idx(path) if path is not None else D.parse_idx(raw)
    except AevbError as e:
        assert "\n" not in str(e)
        return None


@FUZZ
@given(IDX_ARRAYS)
def test_idx_round_trip(array):
    out = D.parse_idx(idx_bytes(array))
    assert out.shape == array.shape and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


@FUZZ
@given(IDX_ARRAYS.flatmap(lambda a: mutated(idx_bytes(a))))
@example(b"\x00\x00\x08\x04\x00\x00\x00\x02S\x00\x00\x00\xc6\x00\x00\x00\x00\x00\x00\x00")  # empty, absurd
def test_idx_mutated_bytes(raw):
    parses_or_refuses(raw)


@FUZZ
@given(st.binary(max_size=64))
def test_idx_random_bytes(raw):
    parses_or_refuses(raw)


@FUZZ
@given(st.data())
def test_idx_mutated_gzip_files(tmp_path, data):
    array = data.draw(IDX_ARRAYS)
    raw = data.draw(mutated(gzip.compress(idx_bytes(array))))
    path = tmp_path / "f.gz"
    path.write_bytes(raw)
    out = parses_or_refuses(raw, path)
    if out is not None and raw == gzip.compress(idx_bytes(array)):
        np.testing.assert_array_equal(out, array)


def test_an_absurd_idx_header_is_refused_without_allocating():
    """Dimensions whose product overflows 64 bits must not wrap round to a plausible size."""
    raw = struct.pack(">HBB", 0, 0x08, 4) + struct.pack(">4I", 2**32 - 1, 2**32 - 1, 2**32 - 1, 2**16)
    with pytest.raises(AevbError, match="needs"):
        D.parse_idx(raw)


# -- the user's .npz -------------------------------------------------------------------------

NPZ_DTYPES = st.sampled_from(["u1", "i1", "<i2", ">i4", "<i8", "<u4", "<u8", ">u8", "<f2", "<f4",
                              ">f4", "<f8", ">f8", "?", "<c8", "<U3", "S2"])
NUMERIC = st.sampled_from(["u1", "<f4", ">f8", "<i8", "?"])
PAIRS = st.sampled_from(3 * [()] + 3 * [("_train", "_test")] + [("_train",), ("_test",)])


@st.composite
def npz_arrays(draw) -> dict[str, np.ndarray]:
    """Arrays under the keys load_npz reads, usually x_train and x_test of one row shape, plus any
    of the optional keys, of any dtype and byte order, rank and value: NaN, inf, float64 beyond
    float32, negatives, labels far out of range, empty or mismatched leading dimensions."""
    n = draw(st.integers(1, 4))
    row = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    missing = draw(st.sampled_from(18 * [None] + ["x_train", "x_test"]))  # now and then one is absent
    keys = {"x_train", "x_test"} - {missing}
    keys |= {"y" + s for s in draw(PAIRS)} | {"lengths" + s for s in draw(PAIRS)}
    keys |= {"other"} if draw(st.booleans()) else set()
    arrays = {}
    for key in sorted(keys):
        plain = draw(st.integers(0, 4)) > 0  # mostly the shape and kind the key asks for
        lead = n if plain else draw(st.sampled_from([n + 1, 0]))
        shape = {"x": (lead, *row), "y": (lead,), "l": (lead,), "o": (lead,)}[key[0]] if plain else (
            lead, *draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)))
        dtype = draw(NUMERIC if plain else NPZ_DTYPES)
        elements = None
        if plain and key[0] in "ly":  # integer lengths within 1..T, labels within 0..9
            dtype = "<i8"
            elements = st.integers(1, max(row[0], 1)) if key[0] == "l" else st.integers(0, 9)
        arrays[key] = draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))
    return arrays


def npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def loads_or_refuses(tmp_path, raw: bytes) -> D.Data | None:
    path = tmp_path / "a.npz"
    path.write_bytes(raw)
    try:
        return D.load_npz(path)
    except AevbError as e:
        assert "\n" not in str(e)
        return None


@FUZZ
@given(npz_arrays())
@example({"x_train": np.ones((2, 3), ">f4"), "x_test": np.ones((1, 3), ">f8")})  # big-endian
@example({"x_train": np.full((2, 3), 1e39), "x_test": np.ones((1, 3))})  # inf once float32
@example({"x_train": np.ones((2, 3)), "x_test": np.ones((1, 3)),
          "y_train": np.array([2**63 + 5, 1], np.uint64), "y_test": np.array([0], np.uint64)})
@example({"x_train": np.ones((2, 3)), "x_test": np.ones((1, 3)),
          "y_train": np.array([10**9, 1]), "y_test": np.array([0])})  # a billion one-hot classes
def test_npz_of_any_arrays(tmp_path, arrays):
    data = loads_or_refuses(tmp_path, npz_bytes(arrays))
    event("accepted" if data is not None else "refused")  # see --hypothesis-show-statistics
    if data is not None:  # what was accepted is finite, numeric and consistent
        for split in (data.train, data.test):
            assert split.x.is_floating_point() or split.x.dtype == torch.uint8
            assert split.x[0].numel() > 0  # at least one feature
            assert torch.isfinite(split.x.float()).all()
            assert split.y is None or (len(split.y) == len(split.x) and (split.y >= 0).all())
        assert data.train.x.shape[1:] == data.test.x.shape[1:]


@FUZZ
@given(st.data())
def test_npz_mutated_bytes(tmp_path, data):
    base = {"x_train": np.random.default_rng(0).random((3, 4)), "x_test": np.zeros((2, 4)),
            "y_train": np.arange(3), "y_test": np.arange(2)}
    loads_or_refuses(tmp_path, data.draw(mutated(npz_bytes(base))))
