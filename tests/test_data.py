"""IDX reading, dataset lookup and download, the user's .npz, and preprocessing."""

import functools
import gzip
import hashlib
import http.server
import re
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from aevb import data as D
from aevb.errors import AevbError


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


# -- IDX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(idx_bytes(a)) if gz else idx_bytes(a))
    np.testing.assert_array_equal(D.read_idx(path), a)


def test_idx_big_endian_types():
    a = np.array([1.5, -2.25, 3.0], dtype=">f4")
    raw = struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 3) + a.tobytes()
    np.testing.assert_array_equal(D.parse_idx(raw), a.astype(np.float32))


@pytest.mark.parametrize("raw, fault", [
    (b"\x00\x00", "too short"),
    (b"\x12\x34\x08\x01" + b"\x00" * 8, "bad IDX magic"),
    (b"\x00\x00\x42\x01" + b"\x00" * 8, "bad IDX magic"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (idx_bytes(np.zeros((3, 4), np.uint8))[:-1], "truncated"),
    (idx_bytes(np.zeros((3, 4), np.uint8)) + b"\x00", "trailing bytes"),
])
def test_idx_faults_are_named(tmp_path, raw, fault):
    path = tmp_path / "bad-idx"
    path.write_bytes(raw)
    with pytest.raises(AevbError, match=fault) as e:
        D.read_idx(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_corrupt_gzip_is_named(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 5), np.uint8)))[:-9])
    with pytest.raises(AevbError, match="corrupt gzip"):
        D.read_idx(path)


# -- named datasets -----------------------------------------------------------------------------


def make_dataset_files(folder: Path, n_train=20, n_test=10, labels_off_by=0) -> dict[str, str]:
    """Write a tiny four-file IDX dataset; returns the SHA-256 of each decompressed file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sums = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, (n + labels_off_by,), dtype=np.uint8)
        pairs = ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels))
        for stem, arr in pairs:
            raw = idx_bytes(arr)
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
            sums[stem] = hashlib.sha256(raw).hexdigest()
    return sums


@pytest.fixture
def tiny_spec(monkeypatch, tmp_path):
    """Register a tiny dataset whose files live in tmp_path/source."""
    sums = make_dataset_files(tmp_path / "source")
    spec = D.IdxDataset("tiny", sha256=sums, mirrors=())
    monkeypatch.setitem(D.DATASETS, "tiny", spec)
    return spec


def test_packaged_sample_loads_offline():
    data = D.load("mnist-sample", preprocess_mode="dequantize")
    assert data.train.x.shape == (5000, 784) and data.test.x.shape == (1000, 784)
    assert data.train.x.dtype == torch.uint8 and data.train.y.max() == 9
    assert "SAMPLE" in data.note


def test_real_mnist_from_shared_root(shared_mnist):
    data = D.load("mnist", data_dir=shared_mnist)
    assert data.train.x.shape == (60000, 784) and data.test.x.shape == (10000, 784)
    assert torch.bincount(data.test.y).tolist()[:2] == [980, 1135]


@pytest.mark.skipif(not D.DEBIAN["fashion-mnist"][0].is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian():
    data = D.load("fashion-mnist")  # found in Debian's folder, checksums verified
    assert data.train.x.shape == (60000, 784) and data.test.x.shape == (10000, 784)
    assert data.classes[9] == "Ankle boot" and torch.bincount(data.test.y).tolist() == [1000] * 10


def test_a_failed_download_names_the_debian_package(tmp_path):
    with pytest.raises(AevbError, match="install the package dataset-fashion-mnist"):
        D.download(D.DATASETS["fashion-mnist"], tmp_path / "fashion-mnist", mirrors=())


def test_roots_are_tried_in_order(tmp_path, monkeypatch, tiny_spec):
    cli_root, env_root = tmp_path / "cli", tmp_path / "env"
    monkeypatch.setenv("AEVB_DATA_DIR", str(env_root))
    dirs = D.candidate_dirs("tiny", cli_root)
    assert dirs == [cli_root / "tiny", env_root / "tiny", D.cache_root() / "tiny"]
    fashion = D.candidate_dirs("fashion-mnist", cli_root)
    assert fashion[2] == Path("/usr/share/datasets/fashion-mnist")
    assert fashion[3] == D.cache_root() / "fashion-mnist"
    make_dataset_files(env_root / "tiny")
    assert D.locate("tiny", cli_root, download_missing=False) == env_root / "tiny"
    make_dataset_files(cli_root / "tiny")
    assert D.locate("tiny", cli_root, download_missing=False) == cli_root / "tiny"


def test_tampered_file_fails_checksum(tmp_path, tiny_spec):
    folder = tmp_path / "root" / "tiny"
    make_dataset_files(folder)
    D.load("tiny", data_dir=tmp_path / "root")  # verifies
    other = make_dataset_files(tmp_path / "other", n_train=21)  # same names, other content
    assert other != tiny_spec.sha256
    name = "train-images-idx3-ubyte.gz"
    (folder / name).write_bytes((tmp_path / "other" / name).read_bytes())
    with pytest.raises(AevbError, match="SHA-256"):
        D.load("tiny", data_dir=tmp_path / "root")


def test_image_and_label_counts_must_agree(tmp_path, monkeypatch):
    sums = make_dataset_files(tmp_path / "root" / "odd", labels_off_by=1)
    monkeypatch.setitem(D.DATASETS, "odd", D.IdxDataset("odd", sha256=sums))
    with pytest.raises(AevbError, match="20 images but .* has 21 labels"):
        D.load("odd", data_dir=tmp_path / "root")


class _Server:
    """A static file server on loopback, serving one folder, in a background thread."""

    def __init__(self, folder: Path):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_loopback_mirror(tmp_path, tiny_spec):
    with _Server(tmp_path / "source") as server:
        data = D.load("tiny", mirrors=(server.url,))
    assert data.train.x.shape == (20, 784)
    cached = D.cache_root() / "tiny"
    assert sorted(p.name for p in cached.iterdir()) == sorted(f"{s}.gz" for s in tiny_spec.sha256)
    D.load("tiny", mirrors=())  # found in the cache now: no download needed


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch, tiny_spec):
    bad = tmp_path / "bad-mirror"
    make_dataset_files(bad, n_train=21)  # valid IDX files with the wrong content
    with _Server(bad) as server, pytest.raises(AevbError, match="checksum mismatch") as e:
        D.load("tiny", data_dir=tmp_path / "root", mirrors=(server.url,))
    assert "--data-dir" in str(e.value)
    assert not (tmp_path / "root").exists()  # no folder, no partial or unverified file


def test_download_falls_back_to_the_next_mirror(tmp_path, tiny_spec):
    bad = tmp_path / "bad-mirror"
    make_dataset_files(bad, n_train=21)
    with _Server(bad) as s1, _Server(tmp_path / "source") as s2:
        data = D.load("tiny", mirrors=(s1.url, s2.url))
    assert len(data.train) == 20


def test_offline_error_says_where_to_put_files(tmp_path, tiny_spec):
    with pytest.raises(AevbError) as e:
        D.load("tiny", mirrors=("http://127.0.0.1:9/",))  # the discard port: refused at once
    msg = str(e.value)
    assert "could not download tiny" in msg and "AEVB_DATA_DIR" in msg and "train-images-idx3-ubyte.gz" in msg
    assert "\n" not in msg


def test_unknown_dataset():
    with pytest.raises(AevbError, match="unknown dataset 'emnist'"):
        D.load("emnist")


# -- the user's .npz ----------------------------------------------------------------------------


def save(tmp_path, **arrays) -> Path:
    path = tmp_path / "user.npz"
    np.savez(path, **arrays)
    return path


def test_npz_loads(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float64)
    path = save(tmp_path, x_train=x, x_test=x[:7], y_train=np.arange(30) % 3, y_test=np.arange(7) % 3)
    data = D.load(str(path))
    assert data.train.x.dtype == torch.float32 and data.event_shape == (5,)
    assert data.classes == ("0", "1", "2") and data.test.y.tolist() == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((3, 2))}, "missing array 'x_test'"),
    ({"x_train": np.zeros((3, 2)), "x_test": np.zeros((3, 2)), "y_train": np.zeros(3, int)},
     "both y_train and y_test"),
    ({"x_train": np.zeros(3), "x_test": np.zeros(3)}, r"shape \(3,\)"),
    ({"x_train": np.zeros((0, 2)), "x_test": np.zeros((3, 2))}, "N > 0"),
    ({"x_train": np.zeros((3, 2)), "x_test": np.zeros((3, 4))}, "x_test rows have"),
    ({"x_train": np.array([[1.0, np.nan], [0, 0]]), "x_test": np.zeros((3, 2))},
     "NaN or infinite values in 1 rows"),
    ({"x_train": np.array([["a", "b"]]), "x_test": np.zeros((3, 2))}, "must be numeric"),
    ({"x_train": np.zeros((3, 2)), "x_test": np.zeros((3, 2)), "y_train": np.zeros(4, int),
      "y_test": np.zeros(3, int)}, r"expected \(3,\)"),
    ({"x_train": np.zeros((3, 2)), "x_test": np.zeros((3, 2)), "y_train": np.full(3, 0.5),
      "y_test": np.zeros(3, int)}, "integer class labels"),
])
def test_npz_faults_are_named(tmp_path, arrays, message):
    path = save(tmp_path, **arrays)
    with pytest.raises(AevbError, match=message) as e:
        D.load(str(path))
    assert str(path) in str(e.value)


def test_npz_with_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=np.array([object(), 1], dtype=object), x_test=np.zeros((2, 2)))
    with pytest.raises(AevbError, match="cannot read arrays"):
        D.load(str(path))


def test_corrupt_npz(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(AevbError, match="not a readable .npz"):
        D.load(str(path))


@pytest.mark.parametrize("content, message", [
    (b"", "not an .npz file (empty)"),
    (b"x_train,x_test\n1,2\n", "not an .npz file (not a zip archive)"),
    (b"\x93NUMPY\x01\x00", "holds one array (.npy), not an .npz"),
])
def test_files_that_are_not_npz_are_named(tmp_path, content, message):
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(AevbError, match=re.escape(message)):
        D.load(str(path))


def test_pixel_modes_need_pixel_values(tmp_path):
    path = save(tmp_path, x_train=np.full((3, 2), 0.5), x_test=np.zeros((3, 2)))
    with pytest.raises(AevbError, match="expects pixel values 0..255"):
        D.load(str(path), preprocess_mode="dequantize")
    path = save(tmp_path, x_train=np.full((3, 2), 200.0), x_test=np.zeros((3, 2)))
    assert D.load(str(path), preprocess_mode="dequantize").preprocess == "dequantize"


@pytest.mark.parametrize("top", [1, 16, 127])
@pytest.mark.parametrize("mode", ["unit", "dequantize", "binarize-threshold", "binarize-dynamic"])
def test_pixel_modes_refuse_small_integers(tmp_path, mode, top):
    # 0/1 data or scikit-learn's 0..16 digits are integers in 0..255 but not pixels: dequantized
    # they fill [0, top/256], thresholded at 128 they are blank
    x = np.zeros((6, 2))
    x[0, 1] = top
    path = save(tmp_path, x_train=x, x_test=x)
    with pytest.raises(AevbError, match=f"largest value in x_train is {top}; scale the data to 0..255"):
        D.load(str(path), preprocess_mode=mode)
    assert D.load(str(path), preprocess_mode="none").preprocess == "none"


def test_support_check():
    D.check_support(torch.tensor([0.0, 1.0, 0.3]), "unit", "x")
    with pytest.raises(AevbError, match=r"span \[-1, 1\]"):
        D.check_support(torch.tensor([-1.0, 1.0]), "unit", "x")
    with pytest.raises(AevbError, match="binary"):
        D.check_support(torch.tensor([0.0, 0.5]), "binary", "x")


# -- preprocessing ------------------------------------------------------------------------------


def test_preprocessing_modes():
    x = torch.arange(256, dtype=torch.uint8).repeat(40, 1)  # every pixel value, 40 times
    g = torch.Generator().manual_seed(0)
    unit = D.preprocess(x, "unit")
    assert unit.min() == 0 and unit.max() == 1
    deq = D.preprocess(x, "dequantize", g)
    assert ((deq >= x / 256) & (deq < (x.float() + 1) / 256)).all()
    assert not torch.equal(deq, D.preprocess(x, "dequantize", g))  # fresh noise every call
    thr = D.preprocess(x, "binarize-threshold")
    assert torch.equal(thr[0], (torch.arange(256) >= 128).float())
    # the tutorial's form, dequantise then threshold at 0.5, is the same deterministic map
    assert torch.equal(thr, (D.preprocess(x, "dequantize", g) >= 0.5).float())
    dyn = D.preprocess(x.repeat(50, 1), "binarize-dynamic", g)
    assert set(dyn.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(dyn.mean(0), torch.arange(256) / 255.0, atol=0.05)
    with pytest.raises(AevbError, match="unknown preprocessing"):
        D.preprocess(x, "whiten")


def test_noise_comes_from_the_generator_so_every_device_sees_one_test_set():
    x = torch.randint(0, 256, (50, 784), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    dyn = D.preprocess(x, "binarize-dynamic", torch.Generator().manual_seed(1))
    assert torch.equal(dyn, (u < x.float() / 255.0).float())
    if torch.cuda.is_available():  # a CPU generator gives a GPU the same noise (aevb.evaluate)
        for mode in ("dequantize", "binarize-dynamic"):
            cpu = D.preprocess(x, mode, torch.Generator().manual_seed(1))
            gpu = D.preprocess(x.cuda(), mode, torch.Generator().manual_seed(1))
            assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)


def test_batches_cover_the_split_once():
    data = D.fa_synthetic()
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    xs = [b.x for b in data.batches("train", 300, torch.Generator(), order)]
    assert [len(x) for x in xs] == [300, 300, 300, 100]
    assert torch.equal(torch.cat(xs), data.train.x[order])
    later = [b.x for b in data.batches("train", 300, torch.Generator(), order, start=2)]
    assert torch.equal(torch.cat(later), data.train.x[order[600:]])
    subset = [len(b.x) for b in data.batches("train", 300, torch.Generator(), order[:500])]
    assert subset == [300, 200]  # an order that picks a subset yields no empty batches


def test_fa_synthetic_is_the_tutorials():
    data = D.fa_synthetic()
    assert len(data.train) == len(data.test) == 1000
    cov = np.cov(np.concatenate([data.train.x.numpy(), data.test.x.numpy()]).T)
    np.testing.assert_allclose(cov, D.FA_W @ D.FA_W.T + np.diag(D.FA_SIGMA**2), atol=0.3)
    assert torch.equal(data.train.x, D.fa_synthetic().train.x)  # seeded: the same every time


def test_a_dataset_published_with_the_md5_of_its_gz_files_downloads_and_verifies(tmp_path, monkeypatch):
    """KMNIST's publisher gives the MD5 of each .gz file, not of its content."""
    assert D.DATASETS["kmnist"].checksum == "gz-md5" and len(D.DATASETS["kmnist"].classes) == 10
    source = tmp_path / "source"
    make_dataset_files(source)
    md5 = {p.name[:-3]: hashlib.md5(p.read_bytes()).hexdigest() for p in source.glob("*.gz")}
    monkeypatch.setitem(D.DATASETS, "tiny-md5", D.IdxDataset("tiny-md5", sha256=md5, checksum="gz-md5"))
    (tmp_path / "source" / "tiny-md5").mkdir()
    for p in source.glob("*.gz"):
        (source / "tiny-md5" / p.name).write_bytes(p.read_bytes())
    with _Server(source / "tiny-md5") as server:
        data = D.load("tiny-md5", data_dir=tmp_path / "root", mirrors=(server.url,))
    assert len(data.train) == 20
    got = tmp_path / "root" / "tiny-md5" / "train-images-idx3-ubyte.gz"
    got.write_bytes(gzip.compress(gzip.decompress(got.read_bytes()), mtime=1))  # same content, other .gz
    with pytest.raises(AevbError, match="MD5 of the file is"):
        D.load("tiny-md5", data_dir=tmp_path / "root")
    got.unlink()
    (got.parent / "train-images-idx3-ubyte").write_bytes(gzip.decompress((source / got.name).read_bytes()))
    with pytest.raises(AevbError, match="published checksums are of its .gz files"):
        D.load("tiny-md5", data_dir=tmp_path / "root")
