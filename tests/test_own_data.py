"""The user's own data and networks: tables (.csv) and folders of images, their shape recorded in
the run, convolutional networks for images of any size, and bad files refused in one line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aevb.api import Run
from aevb.cli import main
from aevb.data import load
from aevb.data.containers import as_hwc, chw
from aevb.errors import AevbError


def write_csv(path: Path, rows: list[list], header: list[str]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def image_folder(root: Path, labels=("cat", "dog"), n=12, size=(10, 8), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / label / f"{i}.png")
    return root


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("aevb: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- tables ----------------------------------------------------------------------------------


def test_a_csv_is_read_with_its_labels_and_a_seeded_test_split(tmp_path):
    rows = [[i, i * 0.5, ["setosa", "virginica"][i % 2]] for i in range(40)]
    path = write_csv(tmp_path / "t.csv", rows, ["a", "b", "species"])
    data = load(str(path), label_column="species")
    assert data.classes == ("setosa", "virginica") and data.event_shape == (2,)
    assert len(data.train) == 36 and len(data.test) == 4  # a tenth held out
    x = torch.cat([data.train.x, data.test.x])
    assert sorted(x[:, 0].tolist()) == list(range(40))  # every row once
    y = torch.cat([data.train.y, data.test.y])
    assert torch.equal(y, (x[:, 0].long() % 2))  # each row keeps its label
    again = load(str(path), label_column="species")
    assert torch.equal(again.test.x, data.test.x)  # the same split every time


@pytest.mark.parametrize("content, match", [
    ("", "the file is empty"),
    ("a,b\n", "only a header"),
    ("a,b\n1,2\n3\n", "row 3 has 1 cells but the header has 2 columns"),
    ("a,b\n1,2\n3,x\n", "row 3, column 'b' holds 'x', which is not a number"),
    ("a,b\n1,2\n3,inf\n", "row 3, column 'b' is inf"),
])
def test_a_bad_csv_is_one_line_naming_the_row_and_column(tmp_path, capsys, content, match):
    (tmp_path / "t.csv").write_text(content)
    assert main(["train", "vae", "--dataset", str(tmp_path / "t.csv"), "--preprocess", "none",
                 "--out", str(tmp_path / "run")]) == 2
    assert match in one_line(capsys)
    assert not (tmp_path / "run").exists()


def test_a_label_column_must_exist_and_belongs_to_a_csv(tmp_path, capsys):
    path = write_csv(tmp_path / "t.csv", [[1, 2], [3, 4]], ["a", "b"])
    assert main(["train", "vae", "--dataset", str(path), "--label-column", "kind", "--out",
                 str(tmp_path / "r")]) == 2
    assert "no column 'kind' for --label-column; the columns are a, b" in one_line(capsys)
    assert main(["train", "vae", "--dataset", "mnist-sample", "--label-column", "kind", "--out",
                 str(tmp_path / "r")]) == 2
    assert "--label-column names a column of a .csv --dataset" in one_line(capsys)


def test_a_cvae_trains_on_a_csv_with_named_labels(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[*rng.normal(size=3).round(3), ["a", "b", "c"][i % 3]] for i in range(90)]
    path = write_csv(tmp_path / "t.csv", rows, ["x1", "x2", "x3", "kind"])
    assert main(["train", "cvae", "--dataset", str(path), "--label-column", "kind", "--preprocess", "none",
                 "--likelihood", "gaussian", "--prior", "learned", "--latent-dim", "2", "--hidden", "8",
                 "--epochs", "2", "--quiet", "--out", str(tmp_path / "run")]) == 0
    run = Run(tmp_path / "run")
    assert run.meta["data_info"]["classes"] == ["a", "b", "c"] and run.sample(4, label=2).shape == (4, 3)


# -- folders of images --------------------------------------------------------------------------


def test_a_folder_of_colour_images_keeps_its_shape_labels_and_colour(tmp_path):
    folder = image_folder(tmp_path / "pets")
    data = load(str(folder))
    assert data.image_shape == (3, 8, 10) and data.classes == ("cat", "dog")
    assert data.train.x.dtype == torch.uint8 and data.train.x.shape[1:] == (8, 10, 3)
    assert len(data.train) + len(data.test) == 24
    first = np.asarray(Image.open(folder / "cat" / "0.png"))  # (H, W, 3)
    stored = torch.cat([data.train.x, data.test.x]).numpy()
    assert any(np.array_equal(first, img) for img in stored)  # pixels kept as they are


def test_train_and_test_subfolders_are_the_splits(tmp_path):
    image_folder(tmp_path / "d" / "train", n=5, mode="L")
    image_folder(tmp_path / "d" / "test", n=2, mode="L")
    data = load(str(tmp_path / "d"))
    assert (len(data.train), len(data.test)) == (10, 4) and data.image_shape == (1, 8, 10)
    assert data.note == ""  # nothing held out


@pytest.mark.parametrize("spoil, match", [
    (lambda d: Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(d / "cat" / "small.png"),
     "small.png: 5x5 colour, but"),
    (lambda d: Image.fromarray(np.zeros((8, 10), np.uint8)).save(d / "cat" / "grey.png"),
     "grey.png: 10x8 grey, but"),
    (lambda d: (d / "cat" / "broken.png").write_bytes(b"\x89PNG not an image"),
     "broken.png: not a readable image"),
    (lambda d: Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(d / "loose.png"),
     "some images sit in label subfolders and some do not"),
])
def test_a_bad_folder_is_one_line_naming_the_file(tmp_path, capsys, spoil, match):
    folder = image_folder(tmp_path / "pets", n=3)
    spoil(folder)
    assert main(["train", "vae", "--dataset", str(folder), "--out", str(tmp_path / "run")]) == 2
    assert match in one_line(capsys)
    assert not (tmp_path / "run").exists()


# -- shapes and convolutional networks -----------------------------------------------------------


def test_images_are_drawn_in_their_own_shape_whatever_the_layout():
    flat = np.arange(2 * 4 * 5 * 3).reshape(2, 60)  # rows of pixels in row, column, channel order
    hwc = as_hwc(flat, (3, 4, 5))
    assert hwc.shape == (2, 4, 5, 3) and hwc[0, 1, 2, 0] == (1 * 5 + 2) * 3
    channels_first = hwc.transpose(0, 3, 1, 2)  # as a convolutional model gives them
    assert np.array_equal(as_hwc(channels_first, (3, 4, 5)), hwc)
    assert chw([28, 28]) == (1, 28, 28)  # runs recorded grey images as (H, W)


@pytest.mark.parametrize("model", ["vae", "cvae", "gmvae"])
def test_conv_networks_train_on_grey_and_colour_images_of_any_size(tmp_path, model):
    folder = image_folder(tmp_path / "pets", n=10, size=(13, 11))  # odd sizes come back exactly
    extra = {"gmvae": ["--init", "random", "--components", "2"], "cvae": ["--prior", "learned"]}
    assert main(["train", model, "--dataset", str(folder), "--preprocess", "unit", "--arch", "conv",
                 "--likelihood", "continuous-bernoulli", "--hidden", "16", "--latent-dim", "3",
                 "--max-steps", "3", "--batch-size", "8", "--quiet", "--out", str(tmp_path / "run"),
                 *extra.get(model, [])]) == 0
    run = Run(tmp_path / "run")
    assert run.meta["data_info"]["event_shape"] == [3, 11, 13]
    assert run.meta["data_info"]["image_shape"] == [3, 11, 13]
    c = {"label": 1} if model == "cvae" else {}
    assert run.sample(2, mode="param", **c).shape == (2, 3, 11, 13)
    result = run.evaluate(iwae_samples=2, elbo_samples=2)
    assert np.isfinite(result["elbo"]) and result["iwae"] >= result["elbo"] - 5
    assert {p.name for p in run.figures()} >= {"test-digits.png", "generations-param.png"}


def test_conv_is_refused_for_data_without_images(tmp_path, capsys):
    assert main(["train", "vae", "--dataset", "fa-synthetic", "--preprocess", "none", "--likelihood",
                 "gaussian", "--arch", "conv", "--out", str(tmp_path / "r")]) == 2
    assert "--arch conv needs images and fa-synthetic has none" in one_line(capsys)
    assert main(["train", "vae", "--dataset", "mnist-sample", "--arch", "conv", "--layers", "6",
                 "--out", str(tmp_path / "r")]) == 2
    assert "a 28x28 image allows at most 4; lower --layers" in one_line(capsys)


def test_a_conv_vae_trains_compiled_as_it_does_eagerly(tmp_path):
    argv = ["train", "vae", "--dataset", "mnist-sample", "--arch", "conv", "--hidden", "16",
            "--max-steps", "4", "--precision", "fp32", "--quiet"]
    assert main([*argv, "--compile", "--out", str(tmp_path / "c")]) == 0
    assert main([*argv, "--no-compile", "--out", str(tmp_path / "e")]) == 0
    a, b = Run(tmp_path / "c").model.state_dict(), Run(tmp_path / "e").model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4)
    with pytest.raises(AevbError):
        load(str(tmp_path / "nothing.csv"))


# -- networks of the user's own ------------------------------------------------------------------

NETS = '''
import math
from torch import nn


class Encoder(nn.Module):
    def __init__(self, data_shape, width=16):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data_shape), width), nn.Tanh())

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, in_features, data_shape, width=16):
        super().__init__()
        self.shape = data_shape
        self.net = nn.Sequential(nn.Linear(in_features, width), nn.Tanh(),
                                 nn.Linear(width, math.prod(data_shape)))

    def forward(self, z):
        return self.net(z).reshape(len(z), *self.shape)


class Wrong(nn.Module):
    def __init__(self, data_shape):
        super().__init__()

    def forward(self, x):
        return x  # not (B, F) features
'''


@pytest.fixture
def user_nets(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import pkg.nets

    yield pkg.nets
    for name in ("pkg", "pkg.nets"):
        __import__("sys").modules.pop(name, None)


def test_networks_of_your_own_by_import_path_are_recorded_and_imported_again(tmp_path, user_nets, capsys):
    import aevb

    x = np.random.default_rng(0).normal(size=(120, 5)).astype(np.float32)
    run = aevb.fit("vae", x[:100], x[100:], out=tmp_path / "run", preprocess="none", likelihood="gaussian",
                   encoder=user_nets.Encoder, encoder_args={"width": 12}, decoder="pkg.nets:Decoder",
                   latent_dim=2, epochs=2, quiet=True)
    saved = run.config.model_config
    assert (saved.encoder, saved.encoder_args, saved.decoder) == ("pkg.nets:Encoder", '{"width": 12}',
                                                                   "pkg.nets:Decoder")
    assert run.model.encoder.net[1].out_features == 12 and run.encode(x[:3]).shape == (3, 2)
    assert aevb.open(tmp_path / "run").evaluate()["n"] == 20  # built again from the import path
    # a process that cannot import the class: one line naming it, exit 2
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "aevb", "evaluate", str(tmp_path / "run")],
                          capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": ""})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot import --encoder pkg.nets:Encoder" in done.stderr


@pytest.mark.parametrize("argv, match", [
    (["--encoder", "pkg.nets:Encoder"], "give --encoder and --decoder together"),
    (["--encoder", "pkg.nets:Nope", "--decoder", "pkg.nets:Decoder"],
     "cannot import --encoder pkg.nets:Nope"),
    (["--encoder", "pkg.nets:Wrong", "--decoder", "pkg.nets:Decoder"], "it must give features (B, F)"),
    (["--encoder", "pkg.nets:Encoder", "--decoder", "pkg.nets:Decoder", "--encoder-args", '{"depth": 3}'],
     "could not be built with data_shape and --encoder-args"),
    (["--encoder", "pkg.nets:Encoder", "--decoder", "pkg.nets:Decoder", "--decoder-args", "[1]"],
     "must be an object of keyword arguments"),
])
def test_a_network_of_your_own_that_does_not_fit_is_one_line(tmp_path, user_nets, capsys, argv, match):
    assert main(["train", "vae", "--dataset", "mnist-sample", *argv, "--max-steps", "1",
                 "--out", str(tmp_path / "run")]) == 2
    assert match in one_line(capsys)
    assert not (tmp_path / "run").exists()


# -- large data: memory-mapped files, pixels as bytes, a folder decoded once ------------------------

from aevb.data.npz import from_arrays, load_npz, read_members  # noqa: E402


def test_an_uncompressed_npz_is_memory_mapped_and_a_compressed_one_read(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (50, 6, 7), dtype=np.uint8),
              "x_test": rng.random((9, 6, 7)).astype(">f8"),  # big-endian, as another machine saved it
              "y_train": rng.integers(0, 3, 50), "y_test": np.arange(9) % 3,
              "classes": np.array(["ant", "bee", "cat"])}
    np.savez(tmp_path / "plain.npz", **arrays)
    np.savez_compressed(tmp_path / "packed.npz", **arrays)
    plain, packed = read_members(tmp_path / "plain.npz"), read_members(tmp_path / "packed.npz")
    for name, a in arrays.items():
        assert np.array_equal(plain[name], a) and np.array_equal(packed[name], a), name
        assert isinstance(plain[name], np.memmap) and not isinstance(packed[name], np.memmap)
    data = load_npz(tmp_path / "plain.npz")
    assert data.classes == ("ant", "bee", "cat") and data.image_shape == (1, 6, 7)
    mapped = plain["x_train"]
    # the training split is the file's pages, not a copy of them
    assert from_arrays(plain, "f").train.x.data_ptr() == mapped.ctypes.data


@pytest.mark.parametrize("spoil, match", [
    (lambda b: b[: len(b) // 2], "not a readable .npz"),  # cut off mid-array
    (lambda b: b.replace(b"PK\x03\x04", b"PK\x03\x05", 1), "not a readable .npz"),
])
def test_a_damaged_uncompressed_npz_is_one_line(tmp_path, capsys, spoil, match):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((400, 30)), x_test=np.zeros((10, 30)))
    (tmp_path / "d.npz").write_bytes(spoil((tmp_path / "d.npz").read_bytes()))
    assert main(["train", "fa", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r")]) == 2
    assert match in one_line(capsys)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("classes, match", [
    (np.array([1, 2]), "classes must be a 1-D array of strings"),
    (np.array(["a"]), "classes names 1 labels but y holds labels up to 1"),
])
def test_bad_class_names_are_one_line(classes, match):
    arrays = {"x_train": np.zeros((4, 3)), "x_test": np.zeros((2, 3)), "y_train": np.array([0, 1, 0, 1]),
              "y_test": np.array([0, 1]), "classes": classes}
    with pytest.raises(AevbError, match=match):
        from_arrays(arrays, "mine")


def test_pixels_given_as_floats_are_held_as_bytes_and_read_the_same(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (40, 16)).astype(np.uint8)
    np.savez(tmp_path / "bytes.npz", x_train=x, x_test=x[:8])
    np.savez(tmp_path / "floats.npz", x_train=x.astype(np.float64), x_test=x[:8].astype(np.float32))
    as_bytes = load(str(tmp_path / "bytes.npz"), preprocess_mode="binarize-dynamic")
    as_floats = load(str(tmp_path / "floats.npz"), preprocess_mode="binarize-dynamic")
    assert as_floats.train.x.dtype == as_floats.test.x.dtype == torch.uint8
    draw = [next(d.batches("train", 40, torch.Generator().manual_seed(3))).x for d in (as_bytes, as_floats)]
    assert torch.equal(draw[0], draw[1])
    assert load(str(tmp_path / "floats.npz")).train.x.dtype == torch.float32  # raw values stay values


def test_a_folder_is_decoded_once_into_the_run_which_reads_it_without_the_folder(tmp_path, capsys):
    folder = image_folder(tmp_path / "pets", n=15, mode="L")
    run = tmp_path / "run"
    assert main(["train", "cvae", "--dataset", str(folder), "--epochs", "1", "--hidden", "16",
                 "--latent-dim", "2", "--out", str(run), "--quiet"]) == 0
    copy = read_members(run / "data.npz")  # the decoded images and the labels' names
    assert copy["x_train"].shape[1:] == (8, 10) and list(copy["classes"]) == ["cat", "dog"]
    assert json.loads((run / "config.json").read_text())["data"]["dataset"] == str(folder)
    before = Run(run).evaluate()
    for png in folder.rglob("*.png"):
        png.unlink()
    assert Run(run).evaluate() == before  # read from the run's copy, the folder gone
    assert main(["train", "cvae", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert Run(run).meta["data_info"]["classes"] == ["cat", "dog"]
    assert len(Run(run).codes()["z"]) == len(copy["x_test"])  # the test split, from the copy


def test_a_data_file_that_changed_since_training_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.normal(size=(60, 5)), x_test=rng.normal(size=(10, 5)))
    run = tmp_path / "run"
    assert main(["train", "fa", "--dataset", str(path), "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    np.savez(path, x_train=rng.normal(size=(60, 5)), x_test=rng.normal(size=(10, 5)))
    for argv in (["evaluate", str(run)], ["train", "fa", "--out", str(run), "--resume", "--epochs", "2"]):
        assert main(argv) == 2
        assert "d.npz has changed since" in one_line(capsys)
    assert main(["evaluate", str(run), "--dataset", str(path)]) == 0  # other data, named
