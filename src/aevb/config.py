"""Typed run configuration: dataclasses with commented defaults, read from TOML, saved with every run.

A run is described by three parts plus the model's own options:

    model = "fa"
    [model_config]   # the model's dataclass, e.g. FAConfig
    [data]           # DataConfig
    [train]          # TrainConfig

Precedence, lowest first: the model's recipe (the tutorial's defaults), a `--config` TOML file, then
command-line flags.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aevb.errors import AevbError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class DataConfig:
    dataset: str = "fa-synthetic"  # a dataset name (`aevb.data.DATASETS`) or a path to an .npz
    data_dir: str | None = None  # data root holding one folder per dataset; see aevb.data
    preprocess: str = "none"  # none | unit | dequantize | binarize-threshold | binarize-dynamic


@dataclass
class TrainConfig:
    epochs: int = 35  # passes over the training split
    max_steps: int | None = None  # stop after this many gradient steps in total (None: no limit)
    batch_size: int = 32
    lr: float = 1e-2  # Adam learning rate, shared by every parameter
    seed: int = 0  # seeds initialisation, batching, preprocessing noise and sampling
    device: str = "auto"  # auto | cpu | cuda | mps
    train_samples: int = 1  # K reparameterised samples per datapoint in the training ELBO
    eval_batch_size: int = 1000  # datapoints per batch when evaluating
    eval_samples: int = 10  # draws of z per test point in the logged test ELBO (less MC noise)
    precision: str = "fp32"  # fp32 | bf16 | auto: bf16 autocasts the networks (densities, ELBO, Adam
    #                          stay fp32); auto is bf16 where the device has bf16 hardware
    compile: bool | None = None  # torch.compile the ELBO and its gradient; None: for runs long
    #                              enough to repay compiling, on a GPU from the second epoch
    #                              (aevb.compiling.compile_from)
    cuda_graphs: bool | None = None  # replay each training step as one CUDA graph (aevb.cuda_graphs);
    #                                  None: on a CUDA device in one process
    clip_grad: float | None = None  # rescale the gradient to at most this L2 norm (None: no clipping)
    on_nan: str = "stop"  # stop | rollback: what a NaN/inf loss or gradient does (aevb.train)
    freeze: str = ""  # parameters held fixed for the first freeze_epochs epochs: comma-separated
    #                   module names (e.g. "qy", the GMVAE's q(y|x)); "" holds none
    freeze_epochs: int = 0
    lr_decay_from: int | None = None  # from this epoch the learning rate falls along a half cosine
    #                                   to 0 at the last planned step (None: constant)


@dataclass
class RunConfig:
    model: str
    model_config: Any  # the model's own dataclass instance
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "model_config": dataclasses.asdict(self.model_config),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
        }


try:  # `int | None` builds types.UnionType, `Optional[int]` builds typing.Union
    from types import UnionType as _UnionType
except ImportError:  # pragma: no cover
    _UnionType = typing.Union


def field_types(cls) -> dict[str, Any]:
    """The resolved type of every field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _check_value(cls, name: str, value: Any, where: str) -> Any:
    """Return `value` if it fits field `name` of `cls` (ints widen to floats), else raise."""
    kind = field_types(cls)[name]
    allowed = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, _UnionType) else (kind,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t in (str, bool) and isinstance(value, t):
            return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise AevbError(f"{where}: '{name}' must be {names}, got {value!r}")


def replace_checked(obj, values: dict, where: str):
    """`dataclasses.replace` that names unknown keys and wrongly typed values in one line."""
    known = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise AevbError(
            f"{where}: unknown option {unknown[0]!r}; known options are {', '.join(sorted(known))}"
        )
    checked = {k: _check_value(type(obj), k, v, where) for k, v in values.items()}
    return dataclasses.replace(obj, **checked)


# A recipe file's top-level keys. `description`, `pretrained` (the shipped model it made) and
# `[reference]` (the published number it reproduces) are read by `aevb reproduce`, not by training.
RECIPE_KEYS = {"model", "model_config", "data", "train", "description", "pretrained", "reference"}


def read_toml(path: str | Path) -> dict:
    """Parse a config file; a missing or malformed one is an AevbError naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise AevbError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise AevbError(f"config file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(raw) - RECIPE_KEYS)
    if unknown:
        raise AevbError(
            f"config file {path}: unknown section {unknown[0]!r}; use model, description, pretrained, "
            "[model_config], [data], [train] and [reference]"
        )
    return raw


def check_ranges(cfg: RunConfig) -> None:
    """Refuse values of the right type but outside their range: counts must be at least 1, the
    learning rate and clipping norm positive and finite, dropout in [0, 1)."""
    t, m = cfg.train, cfg.model_config
    model_ints = [k for k, kind in field_types(type(m)).items() if kind is int]  # sizes, layer counts
    counts = {k: getattr(t, k) for k in ("epochs", "batch_size", "max_steps", "train_samples",
                                         "eval_batch_size", "eval_samples")}
    counts.update({k: getattr(m, k) for k in model_ints})
    for name, value in counts.items():
        if value is not None and value < 1:
            raise AevbError(f"{_named(name)} must be at least 1, got {value}")
    for name, value in (("lr", t.lr), ("clip_grad", t.clip_grad)):
        if value is not None and not 0 < value < float("inf"):
            raise AevbError(f"{_named(name)} must be a positive number, got {value}")
    dropout = getattr(m, "dropout", 0.0)
    if not 0 <= dropout < 1:
        raise AevbError(f"{_named('dropout')} must be in [0, 1), got {dropout}")
    if t.freeze_epochs < 0:
        raise AevbError(f"{_named('freeze_epochs')} must be at least 0, got {t.freeze_epochs}")
    if t.lr_decay_from is not None and not 0 <= t.lr_decay_from < t.epochs:
        raise AevbError(f"{_named('lr_decay_from')} must be an epoch from 0 to epochs - 1 "
                        f"({t.epochs - 1}), got {t.lr_decay_from}")
    if t.on_nan not in ("stop", "rollback"):
        raise AevbError(f"{_named('on_nan')} must be stop or rollback, got {t.on_nan!r}")


def flag(key: str) -> str:
    """The command-line flag of a config key: batch_size -> --batch-size."""
    return "--" + key.replace("_", "-")


def _named(key: str) -> str:
    return f"{key} ({flag(key)} or '{key}' in a config file)"


def build_config(model: str, model_cls, sources: list[tuple[str, dict]]) -> RunConfig:
    """Layer the model's recipe and each (where, dict) source, in order, into a RunConfig.

    Each source is a dict shaped like the TOML file: optional "model_config", "data", "train".
    """
    cfg = RunConfig(model=model, model_config=model_cls.Config())
    cfg.data = replace_checked(cfg.data, model_cls.recipe.get("data", {}), "recipe")
    cfg.train = replace_checked(cfg.train, model_cls.recipe.get("train", {}), "recipe")
    for where, src in sources:
        if "model" in src and src["model"] != model:
            raise AevbError(f"{where} is a recipe for model {src['model']!r}, not {model!r}")
        cfg.model_config = replace_checked(cfg.model_config, src.get("model_config", {}), where)
        cfg.data = replace_checked(cfg.data, src.get("data", {}), where)
        cfg.train = replace_checked(cfg.train, src.get("train", {}), where)
    check_ranges(cfg)
    return cfg


def sections(model: str, model_cls, settings: dict) -> dict:
    """Settings named as `aevb train`'s flags are, in snake case (epochs=, dataset=, latent_dim=),
    sorted into the sections of a recipe file: {"data": ..., "train": ..., "model_config": ...}."""
    classes = {"data": DataConfig, "train": TrainConfig, "model_config": model_cls.Config}
    given: dict[str, dict] = {section: {} for section in classes}
    for key, value in settings.items():
        section = next((s for s, c in classes.items() if key in field_types(c)), None)
        if section is None:
            known = sorted(k for c in classes.values() for k in field_types(c))
            raise AevbError(f"{key!r} is not a setting of {model}; use one of {', '.join(known)}")
        given[section][key] = value
    return given


def config_from_dict(d: dict, model_cls) -> RunConfig:
    """Rebuild a saved RunConfig (the inverse of `RunConfig.to_dict`)."""
    where = "saved run config"
    return RunConfig(
        model=d["model"],
        model_config=replace_checked(model_cls.Config(), d.get("model_config", {}), where),
        data=replace_checked(DataConfig(), d.get("data", {}), where),
        train=replace_checked(TrainConfig(), d.get("train", {}), where),
    )
