"""The layout's promises, read from the source tree: no import cycle among aevb's modules
(function-local imports included) nor among its subpackages, models that import only what a model
needs, imports inside functions only for slow or optional libraries, and no model named outside
`aevb.models`."""

import ast
import importlib.util
from pathlib import Path

import pytest
import torch

from aevb.models import registry

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "aevb"
# Imported inside functions because they are slow to import or optional, never to dodge a cycle.
LAZY_ALLOWED = ("matplotlib", "umap", "sklearn", "scipy", "torch._inductor", "tensorboard",
                "torch.utils.tensorboard", "PIL")  # tensorboard: an optional extra; PIL: image folders
# The program answers `aevb --help` and Ctrl-C before torch loads (aevb.entry, aevb.argparser).
STARTUP = {("aevb.entry", "aevb.cli"), ("aevb.argparser", "torch"), ("aevb.argparser", "aevb.provenance")}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function) for every import statement of a module; `from P import
    X` counts as importing P.X when that is a module, else P."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    local = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in local) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for a in node.names:
                full = f"{base}.{a.name}"
                found.append((full if full in MODULES else base, id(node) in local))
    return found


def graph() -> dict[str, set[str]]:
    return {name: {m for m, _ in imports(name, path) if m in MODULES and m != name}
            for name, path in MODULES.items()}


def unit(module: str) -> str:
    """The part of aevb a module belongs to: its subpackage (aevb.runs), or the module itself."""
    return ".".join(module.split(".")[:2])


def test_subpackages_and_top_modules_import_each_other_without_a_cycle():
    units: dict[str, set[str]] = {}
    for name, deps in graph().items():
        units.setdefault(unit(name), set()).update(unit(d) for d in deps if unit(d) != unit(name))
    units.pop("aevb", None)  # the package's lazy public names point at everything
    done, path = set(), []

    def visit(node: str) -> None:
        assert node not in path, " -> ".join([*path[path.index(node):], node])
        if node in done:
            return
        path.append(node)
        for nxt in sorted(units.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(units):
        visit(node)


def test_models_are_only_models():
    """aevb.models imports nothing from training, runs, reports, evaluation or starts."""
    forbidden = ("aevb.training", "aevb.runs", "aevb.reports", "aevb.evaluate", "aevb.starts",
                 "aevb.encoding", "aevb.api")
    found = [(name, m) for name, path in MODULES.items() if name.startswith("aevb.models")
             for m, _ in imports(name, path) if m.startswith(forbidden)]
    assert not found, found


def test_aevbs_modules_import_each_other_without_a_cycle():
    edges, state, stack = graph(), {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name)


def test_imports_inside_functions_are_only_of_slow_or_optional_libraries():
    lazy = [(name, m) for name, path in MODULES.items() for m, inside in imports(name, path)
            if inside and not m.startswith(LAZY_ALLOWED) and (name, m) not in STARTUP]
    assert not lazy, lazy


def test_the_graph_sees_function_local_imports():
    """The cycle check would be empty if imports inside functions went unseen."""
    assert ("sklearn.manifold", True) in imports("aevb.reports.figures", MODULES["aevb.reports.figures"])


def test_no_model_is_named_outside_the_models_package():
    """Behaviour particular to one model is asked of the model, never `if cfg.model == "fa"`."""
    names = set(registry.MODELS)
    named = []
    for name, path in MODULES.items():
        if name.startswith("aevb.models"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                named.append((name, node.value, node.lineno))
    assert not named, named


def test_a_new_model_is_one_file_and_one_registry_line():
    """Every model class lives in its own module of aevb.models and is listed in the registry."""
    files = {cls.__module__ for cls in registry.MODELS.values()}
    assert len(files) == len(registry.MODELS) and all(f.startswith("aevb.models.") for f in files)


def test_a_model_in_one_new_file_trains_evaluates_and_samples(tmp_path, monkeypatch, capsys):
    """Registering a LatentModel is all it takes: nothing outside its own file names it."""
    from dataclasses import dataclass

    from torch import nn
    from torch.distributions import Independent, Normal

    from aevb.cli import main
    from aevb.config import option
    from aevb.models.base import LatentModel

    @dataclass(frozen=True)
    class ShiftConfig:
        scale: float = option(0.5, "the likelihood's standard deviation", positive=True)

    class Shift(LatentModel):
        """x = z + noise: a one-parameter model written in a test."""

        name, Config = "shift", ShiftConfig
        recipe = {"data": {"dataset": "fa-synthetic"}, "train": {"epochs": 2, "lr": 0.05}}

        def __init__(self, cfg, event_shape, n_classes=None):
            super().__init__()
            self.cfg, (d,) = cfg, event_shape
            self.a = nn.Parameter(torch.zeros(d))

        def prior(self, c=None):
            return Independent(Normal(torch.zeros_like(self.a), torch.ones_like(self.a)), 1)

        def likelihood(self, z, c=None):
            return Independent(Normal(z, torch.full_like(z, self.cfg.scale)), 1)

        def posterior(self, x, c=None):
            return Independent(Normal(self.a * x, torch.ones_like(x)), 1)

    monkeypatch.setitem(registry.MODELS, "shift", Shift)  # the one registry line
    run = tmp_path / "run"
    assert main(["train", "shift", "--scale", "0.7", "--quiet", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--json"]) == 0
    assert '"model": "shift"' in capsys.readouterr().out
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "x.npy")]) == 0


def test_a_config_is_built_once_frozen_and_each_check_runs_once(tmp_path, monkeypatch):
    import dataclasses

    from aevb.cli import main
    from aevb.models.gmvae import GMVAE
    from aevb.runs import build_config, resolve

    calls = {"model": 0, "device": 0}
    model_check, device_check = GMVAE.check_config.__func__, resolve._resolve_for_device

    def count(key, fn):
        def counted(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)
        return counted

    monkeypatch.setattr(GMVAE, "check_config", classmethod(count("model", model_check)))
    monkeypatch.setattr(resolve, "_resolve_for_device", count("device", device_check))
    argv = ["train", "gmvae", "--dataset", "mnist-sample", "--hidden", "8", "--max-steps", "2",
            "--no-compile", "--init", "random", "--quiet", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert calls == {"model": 1, "device": 1}
    resume = [*argv[:6], "--max-steps", "3", "--resume", "--quiet", "--out", str(tmp_path / "run")]
    assert main(resume) == 0
    assert calls == {"model": 1, "device": 2}  # a resumed run starts nothing; its device may change
    cfg = build_config("vae")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3


def test_every_option_has_its_help_and_shows_its_allowed_values(capsys):
    import dataclasses

    from aevb.cli import main
    from aevb.config import DataConfig, TrainConfig, flag, flags, meta

    for name, cls in registry.MODELS.items():
        for config in (DataConfig, TrainConfig, cls.Config):
            for f in dataclasses.fields(config):
                assert meta(config, f.name).get("help"), (config.__name__, f.name)
        with pytest.raises(SystemExit):
            main(["train", name, "--help"])
        shown = capsys.readouterr().out
        for config in (DataConfig, TrainConfig, cls.Config):
            for name in flags(config):  # every field but the facts aevb records (from_memory)
                assert flag(name) in shown, name
                choices = meta(config, name).get("choices")
                assert not choices or "{" + ",".join(choices) + "}" in shown, name
        assert "model option" not in shown and "(default: None)" not in shown and "(default: )" not in shown
    assert flags(DataConfig) == ["dataset", "data_dir", "preprocess", "label_column"]
