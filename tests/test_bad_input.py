"""Bad input, as a user would type it: every case is one line on stderr naming the problem and what
to do, exit code 2, and no file left behind that was not there before."""

import gzip
import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from aevb import data as D
from aevb import runs
from aevb.cli import main
from aevb.config import RunConfig, TrainConfig
from aevb.errors import AevbError
from aevb.models.vae import VAEConfig
from aevb.runs.directory import CHECKPOINT


def idx(array: np.ndarray, magic: bytes | None = None) -> bytes:
    header = magic or struct.pack(">HBB", 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def idx_dataset(root: Path, monkeypatch, images: bytes | None = None, labels_off_by: int = 0,
                gz_payload: bytes | None = None) -> str:
    """A four-file IDX dataset `tiny` under root/tiny, registered with the checksums of what was
    written; `images` replaces the train images' IDX bytes, `gz_payload` their .gz file."""
    folder = root / "tiny"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sums = {}
    for split, n in (("train", 20), ("t10k", 10)):
        files = {f"{split}-images-idx3-ubyte": idx(rng.integers(0, 256, (n, 28, 28))),
                 f"{split}-labels-idx1-ubyte": idx(rng.integers(0, 10, (n + labels_off_by,)))}
        if split == "train" and images is not None:
            files["train-images-idx3-ubyte"] = images
        for stem, raw in files.items():
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
            sums[stem] = hashlib.sha256(raw).hexdigest()
    if gz_payload is not None:
        (folder / "train-images-idx3-ubyte.gz").write_bytes(gz_payload)
    monkeypatch.setitem(D.DATASETS, "tiny", D.IdxDataset("tiny", sha256=sums))
    return str(root)


def npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def images(n=8, d=6, lo=0.0, hi=1.0):
    return np.random.default_rng(0).uniform(lo, hi, (n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def fa_run(tmp_path_factory) -> Path:
    """A finished two-step FA run, shared read-only by the checkpoint cases (copied when changed)."""
    run = tmp_path_factory.mktemp("fa") / "run"
    assert main(["train", "fa", "--max-steps", "2", "--out", str(run), "--quiet"]) == 0
    return run


def copy_run(src: Path, dst: Path, **meta_changes) -> str:
    """A copy of a run whose checkpoint's JSON header has `meta_changes` applied."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    if meta_changes:
        path = dst / CKPT
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            meta = json.loads(f.metadata()["aevb"])
        save_file(tensors, str(path), metadata={"aevb": json.dumps({**meta, **meta_changes})})
    return str(dst)


def no_mirror(m) -> str:
    m.setitem(D.DATASETS, "tiny", D.IdxDataset("tiny", sha256={"train-images-idx3-ubyte": "0" * 64}))
    return "tiny"


class Evil:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


TINY = ["train", "vae", "--dataset", "tiny", "--data-dir"]
NPZ = ["--preprocess", "none", "--dataset"]
CKPT = CHECKPOINT

# Each case: (id, setup(tmp_path, monkeypatch, fa_run) -> argv, text the one-line error must hold).
CASES = [
    # -- IDX datasets --
    ("corrupt gz", lambda t, m, r: TINY + [idx_dataset(t / "root", m, gz_payload=b"\x1f\x8b\x08 junk")],
     "corrupt gzip stream"),
    ("truncated gz", lambda t, m, r: TINY + [idx_dataset(
        t / "root", m, gz_payload=gzip.compress(idx(np.zeros((20, 28, 28))))[:-30])],
     "corrupt gzip stream"),
    ("wrong IDX magic", lambda t, m, r: TINY + [idx_dataset(
        t / "root", m, images=idx(np.zeros((20, 28, 28)), magic=b"\x00\x00\x42\x03"))],
     "bad IDX magic number"),
    ("truncated IDX", lambda t, m, r: TINY + [idx_dataset(
        t / "root", m, images=idx(np.zeros((20, 28, 28)))[:-100])], "truncated"),
    ("image and label counts disagree", lambda t, m, r: TINY + [
        idx_dataset(t / "root", m, labels_off_by=1)], "20 images but"),
    ("dataset missing offline", lambda t, m, r: [
        "train", "vae", "--dataset", no_mirror(m), "--data-dir", str(t / "nothing")],
     "could not download tiny"),
    # -- the user's .npz --
    ("npz missing key", lambda t, m, r: ["train", "fa", *NPZ, npz(t / "a.npz", x_train=images())],
     "missing array 'x_test'"),
    ("npz wrong dtype", lambda t, m, r: ["train", "fa", *NPZ, npz(
        t / "a.npz", x_train=np.array([["a", "b"]]), x_test=images())], "must be numeric"),
    ("npz NaN", lambda t, m, r: ["train", "fa", *NPZ, npz(
        t / "a.npz", x_train=np.where(images() > 0.9, np.nan, images()), x_test=images())],
     "NaN or infinite values"),
    ("npz inf", lambda t, m, r: ["train", "fa", *NPZ, npz(
        t / "a.npz", x_train=images(), x_test=np.full((4, 6), np.inf))], "NaN or infinite values"),
    ("npz of small integers read as pixels", lambda t, m, r: ["train", "vae", "--dataset", npz(
        t / "a.npz", x_train=np.eye(6), x_test=np.eye(6))], "largest value in x_train is 1"),
    ("npz not binary for a Bernoulli likelihood", lambda t, m, r: [
        "train", "vae", "--likelihood", "bernoulli", *NPZ, npz(
            t / "a.npz", x_train=images(hi=3.0), x_test=images())], "binary 0/1 values"),
    ("npz outside [0,1] for a continuous Bernoulli", lambda t, m, r: [
        "train", "vae", *NPZ, npz(t / "a.npz", x_train=images(lo=-1.0), x_test=images())],
     "needs [0, 1]"),
    ("npz of vectors for the VRNN", lambda t, m, r: [
        "train", "vrnn", *NPZ, npz(t / "a.npz", x_train=images().round(), x_test=images().round())],
     "give x_train and x_test as (N, T, D)"),
    ("npz with no features", lambda t, m, r: ["train", "fa", *NPZ, npz(
        t / "a.npz", x_train=np.zeros((5, 0)), x_test=np.zeros((5, 0)))], "D > 0"),
    ("npz holding a pickled object", lambda t, m, r: ["train", "fa", *NPZ, npz(
        t / "a.npz", x_train=np.array([Evil(t / "pwned"), 1], dtype=object), x_test=images())],
     "cannot read arrays"),
    ("npz that is not a zip", lambda t, m, r: [
        "train", "fa", *NPZ, str(write(t / "a.npz", b"PK\x03\x04 not a zip"))], "not a readable .npz"),
    ("CVAE without labels", lambda t, m, r: [
        "train", "cvae", *NPZ, npz(t / "a.npz", x_train=images(), x_test=images())],
     "conditioned on labels"),
    # -- options --
    ("unknown dataset", lambda t, m, r: ["train", "fa", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    ("unknown config key", lambda t, m, r: [
        "train", "fa", "--config", str(write(t / "c.toml", "[train]\nepoch = 3\n"))],
     "unknown option 'epoch'"),
    ("zero epochs", lambda t, m, r: ["train", "fa", "--epochs", "0"], "epochs (--epochs"),
    ("negative batch size", lambda t, m, r: ["train", "fa", "--batch-size", "-5"], "must be at least 1"),
    ("zero learning rate", lambda t, m, r: ["train", "fa", "--lr", "0"], "lr (--lr"),
    ("NaN learning rate", lambda t, m, r: ["train", "fa", "--lr", "nan"], "must be a positive number"),
    ("zero latent size", lambda t, m, r: ["train", "vae", "--latent-dim", "0"], "latent_dim"),
    ("dropout of 1", lambda t, m, r: ["train", "vae", "--dropout", "1"], "must be in [0, 1)"),
    ("non-positive clipping", lambda t, m, r: ["train", "fa", "--clip-grad", "0"], "clip_grad"),
    ("unknown --on-nan", lambda t, m, r: ["train", "fa", "--on-nan", "ignore"], "one of stop, rollback"),
    ("unknown precision", lambda t, m, r: ["train", "fa", "--precision", "fp8"], "unknown precision"),
    ("negative --iwae-samples", lambda t, m, r: ["evaluate", str(r), "--iwae-samples", "-1"],
     "--iwae-samples (iwae_samples= of Run.evaluate) must be at least 0, got -1"),
    ("negative evaluate --batch-size", lambda t, m, r: ["evaluate", str(r), "--batch-size", "-5"],
     "--batch-size (batch_size= of Run.evaluate) must be at least 1, got -5"),
    ("no samples", lambda t, m, r: ["sample", str(r), "--n", "0", "--out", str(t / "s.npy")],
     "--n (n= of Run.sample) must be at least 1"),
    ("encode batches of none", lambda t, m, r: [
        "encode", str(r), "--batch-size", "0", "--out", str(t / "z.npy")],
     "--batch-size (batch_size= of Run.codes)"),
    ("negative seed", lambda t, m, r: ["train", "fa", "--seed", "-1"],
     "seed (--seed or 'seed' in a config file) must be at least 0"),
    ("config.json with a null section", lambda t, m, r: [
        "train", "fa", "--config", str(write(t / "config.json", '{"model": "fa", "train": null}'))],
     "config.json: 'train' must be a table ([train] in TOML, an object in JSON), got null"),
    ("TOML section that is a string", lambda t, m, r: [
        "train", "fa", "--config", str(write(t / "c.toml", 'model = "fa"\ntrain = "fast"\n'))],
     "c.toml: 'train' must be a table"),
    ("TOML model that is a number", lambda t, m, r: [
        "train", "fa", "--config", str(write(t / "c.toml", 'model = 3\n'))],
     "c.toml: 'model' must be a string"),
    ("TOML value out of range names the file", lambda t, m, r: [
        "train", "fa", "--config", str(write(t / "c.toml", '[train]\nepochs = 0\n'))],
     "c.toml: epochs (--epochs or 'epochs' in a config file) must be at least 1"),
    ("CVAE test label never trained", lambda t, m, r: ["train", "cvae", *NPZ, npz(
        t / "a.npz", x_train=images(), x_test=images(), y_train=np.arange(8) % 2, y_test=np.arange(8) % 3)],
     "y_test holds label 2, which y_train never has"),
    ("GMVAE start on too few points", lambda t, m, r: ["train", "gmvae", *NPZ, npz(
        t / "a.npz", x_train=images().round(), x_test=images().round())],
     "the autoencoder-umap start needs at least 12 training points"),
    ("unknown pretrained model", lambda t, m, r: ["evaluate", "pretrained:vae-imagenet"],
     "no pretrained model 'vae-imagenet'"),
    # -- output directories --
    ("out holds another run", lambda t, m, r: ["train", "fa", "--out", copy_run(r, t / "old")],
     "already holds a run; pass --resume"),
    ("out holds other files", lambda t, m, r: [
        "train", "fa", "--out", str(write(t / "mine" / "notes.txt", "mine").parent)],
     "holds other files"),
    ("out is a file", lambda t, m, r: ["train", "fa", "--out", str(write(t / "f", "x"))], "is a file"),
    ("out cannot be written", lambda t, m, r: ["train", "fa", "--out", f"{write(t / 'f', 'x')}/run"],
     "(Not a directory); nothing was written: a part of the path is a file, not a folder"),
    ("--resume with --overwrite", lambda t, m, r: [
        "train", "fa", "--resume", "--overwrite", "--out", str(t / "x")], "give one"),
    # -- checkpoints --
    ("corrupt checkpoint", lambda t, m, r: [
        "evaluate", str(write(t / "run" / CKPT, b"\x08\x00\x00\x00\x00\x00\x00\x00junk").parent)],
     "not a readable aevb checkpoint"),
    ("pickle payload as checkpoint", lambda t, m, r: [
        "evaluate", str(write(t / "run" / CKPT, pickle.dumps({"model": Evil(t / "pwned")})).parent)],
     "not a readable aevb checkpoint"),
    ("checkpoint of another model", lambda t, m, r: [
        "train", "vae", "--resume", "--out", copy_run(r, t / "old")], "holds a fa run, not vae"),
    ("checkpoint from another version", lambda t, m, r: ["evaluate", copy_run(
        r, t / "old", format="aevb-checkpoint-9", versions={"aevb": "9.0"})],
     "load it with the aevb that wrote it"),
    ("checkpoint whose tensors do not fit", lambda t, m, r: ["evaluate", copy_run(
        r, t / "old", config={**json.loads((r / "config.json").read_text()),
                              "model_config": {"latent_dim": 3}})],
     "do not fit model 'fa'"),
]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if "cache" not in p.relative_to(root).parts}


@pytest.mark.parametrize("setup, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, monkeypatch, capsys, fa_run,
                                                        setup, match):
    monkeypatch.chdir(tmp_path)
    argv = setup(tmp_path, monkeypatch, fa_run)
    assert argv, "the case's setup failed"
    before = files_under(tmp_path)
    fa_before = {p: p.read_bytes() for p in fa_run.iterdir()}
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("aevb: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err
    assert files_under(tmp_path) == before  # nothing half-written, no run folder, no temp file
    assert {p: p.read_bytes() for p in fa_run.iterdir()} == fa_before
    assert not (tmp_path / "pwned").exists()  # no pickled code ran


def test_there_are_at_least_twenty_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 20


def test_usage_errors_are_one_line(capsys):
    for argv in (["train", "gan"], ["train", "fa", "--epochs", "ten"], ["frobnicate"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1


# -- the same faults through the Python API: AevbError, never another exception ------------------


def test_api_errors(tmp_path, fa_run):
    cases = [
        (lambda: D.parse_idx(b"\x00\x00\x08\x01\x00\x00\x00\x09" + bytes(3)), "needs 9 data bytes"),
        (lambda: D.read_idx(tmp_path / "absent.gz"), "cannot read"),
        (lambda: D.load(npz(tmp_path / "n.npz", x_train=images(), x_test=images()[:, :3])),
         "x_test rows have"),
        (lambda: D.load("fa-synthetic", preprocess_mode="whiten"), "unknown preprocessing"),
        (lambda: runs.train(RunConfig("vae", VAEConfig(), train=TrainConfig(epochs=0)), tmp_path / "r"),
         "epochs"),
        (lambda: runs.load_model(tmp_path), "no checkpoint here"),
        (lambda: runs.resume(tmp_path / "nothing", {}), "no checkpoint here"),
        (lambda: runs.resume(fa_run, {"batch_size": 3}), "cannot change when resuming"),
    ]
    for call, match in cases:
        with pytest.raises(AevbError, match=match):
            call()
    assert not (tmp_path / "r").exists()


def test_no_code_path_can_unpickle():
    """Nothing we ship calls an unpickler: checkpoints are safetensors, arrays load without pickle."""
    src = Path(__file__).resolve().parents[1] / "src" / "aevb"
    for path in src.rglob("*.py"):
        text = path.read_text()
        for banned in ("torch.load(", "pickle.load", "allow_pickle=True", "weights_only=False"):
            assert banned not in text, f"{path.name} uses {banned}"
