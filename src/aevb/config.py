"""Typed run configuration: frozen dataclasses whose fields carry their own help, allowed values and
ranges; the command line's flags, the TOML recipes and Python keywords are all read from them.

A run is described by three parts plus the model's own options (each model's `Config`):

    model = "vae"
    [model_config]   # the model's dataclass, e.g. VAEConfig
    [data]           # DataConfig
    [train]          # TrainConfig

`aevb.runs.resolve` builds one from the model's recipe, a `--config` file and flags; this module
only declares the fields and checks single values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aevb.data.support import PREPROCESS
from aevb.errors import AevbError


def option(default: Any, help: str, choices: tuple[str, ...] = (), low: float | None = None,
           positive: bool = False, fraction: bool = False, noun: str | None = None,
           flag: bool = True, metavar: str | None = None, high: float | None = None,
           json_object: bool = False) -> Any:
    """A config field with its help text and checks: one of `choices`; from `low` to `high`; a
    `positive` finite number; a `fraction` in [0, 1); a `json_object`, kept as its JSON text (a
    table in a file, a dict in Python, JSON on the command line). `noun` names the option in
    "unknown NOUN"; `flag=False` keeps it off the command line (a fact aevb records, not a user's
    choice); `metavar` names its value in --help.

        latent_dim: int = option(20, "dimensions of z", low=1)
    """
    checks = {"help": help, "choices": choices, "low": low, "high": high, "positive": positive,
              "fraction": fraction, "noun": noun, "flag": flag, "metavar": metavar,
              "json_object": json_object}
    return field(default=default, metadata=checks)


SEED_MAX = 2**63 - 1  # torch.manual_seed takes any 64-bit value; numpy's seeds must be >= 0
MAX_DRAWS = 1_000_000  # samples, or draws of z per datapoint, in one call: more is a typo, not a plan
SPLITS = ("test", "train")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = option("fa-synthetic", "dataset name (mnist, fashion-mnist, kmnist, mnist-sample, "
                          "fa-synthetic), or an .npz file, a .csv file or a folder of images")
    data_dir: str | None = option(None, "data root holding one folder per dataset (also: "
                                  "$AEVB_DATA_DIR; unset: the user's cache, where a download goes)")
    preprocess: str = option("none", "how raw values become model input: as they are, pixels / 255, "
                             "dequantized (pixel + U(0,1)) / 256, or binarized", choices=PREPROCESS,
                             noun="preprocessing")
    label_column: str | None = option(None, "the column of a .csv dataset that holds the labels, for "
                                      "models that use them (the rest must be numeric)")
    from_memory: bool = option(False, "the data were arrays given to aevb.fit, and `dataset` is the "
                               "copy saved in the run directory as data.npz", flag=False)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(35, "passes over the training split", low=1)
    max_steps: int | None = option(None, "stop after this many gradient steps in total (unset: no "
                                   "limit)", low=1)
    batch_size: int = option(32, "datapoints per gradient step (under torchrun, the global batch)",
                             low=1)
    lr: float = option(1e-2, "Adam learning rate, shared by every parameter", positive=True)
    seed: int = option(0, "seeds initialisation, batching, preprocessing noise and sampling", low=0,
                       high=SEED_MAX)
    device: str = option("auto", "auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps")
    objective: str = option("elbo", "what training maximises: elbo, or iwae, the importance-weighted "
                            "bound over --train-samples draws (Burda et al. 2015)",
                            choices=("elbo", "iwae"), noun="objective")
    train_samples: int = option(1, "draws of z per datapoint in the training objective (K of IWAE_K)",
                                low=1)
    kl_warmup: int = option(0, "epochs over which the ELBO's KL term is weighed from 0 up to 1, "
                            "the reconstruction fully (Sønderby et al. 2016; the logged training ELBO is the "
                            "weighed one meanwhile); 0: none", low=0)
    eval_batch_size: int = option(1000, "datapoints per batch when evaluating", low=1)
    eval_samples: int = option(10, "samples of z per test point in the logged test ELBO", low=1)
    precision: str = option("fp32", "bf16 runs the networks' layers in bfloat16 (densities, ELBO and "
                            "Adam stay fp32); auto is bf16 where the CPU or GPU has bf16 hardware",
                            choices=("auto", "fp32", "bf16"), noun="precision")
    compile: bool | None = option(None, "torch.compile the ELBO and its gradient (unset: for runs of "
                                  "2000+ steps, on a GPU 30000+ and from the second epoch)")
    cuda_graphs: bool | None = option(None, "replay each training step as one CUDA graph (unset: on a "
                                      "CUDA device in one process)")
    clip_grad: float | None = option(None, "rescale the gradient to at most this L2 norm (unset: no "
                                     "clipping)", positive=True)
    on_nan: str = option("stop", "what a NaN or inf loss or gradient does: stop, or roll back to the "
                         "last checkpoint with half the learning rate", choices=("stop", "rollback"),
                         noun="--on-nan")
    freeze: str = option("", "modules held fixed for the first --freeze-epochs epochs, comma-separated "
                         "(e.g. qy, the GMVAE's q(y|x))")
    freeze_epochs: int = option(0, "epochs during which the --freeze modules do not learn", low=0)
    lr_decay_from: int | None = option(None, "from this epoch the learning rate falls along a half "
                                       "cosine to 0 at the last step (unset, or past the last epoch: "
                                       "constant)", low=0)
    lr_schedule: str = option("constant", "constant, or burda: the rate times 10^(-i/7) for 3^i epochs "
                              "in turn, i = 0 to 7, 3,280 epochs in all (Burda et al. 2015)",
                              choices=("constant", "burda"), noun="learning-rate schedule")
    tensorboard: bool = option(False, "log each epoch's ELBOs, metrics, learning rate and a grid of "
                               "samples for TensorBoard in RUN/tensorboard (needs aevb[tensorboard])")


@dataclass(frozen=True)
class RunConfig:
    model: str
    model_config: Any  # the model's own frozen dataclass instance
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        """Every value checked as it would be from a file, also in a RunConfig made by hand; the
        checks across fields and against the device are `aevb.runs.build_config`'s."""
        for section in (self.model_config, self.data, self.train):
            replace_checked(section, dataclasses.asdict(section), "RunConfig")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "model_config": dataclasses.asdict(self.model_config),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
        }


SECTIONS = ("model_config", "data", "train")


# -- the options of the commands that use a trained run, and of `Run`'s methods of the same names --
# `in_files = False`: they are given on the command line or in Python, never in a config file.


@dataclass(frozen=True)
class EvaluateOptions:
    """`aevb evaluate`'s numbers and `Run.evaluate`'s parameters, checked as `train`'s options are."""

    in_files: typing.ClassVar[bool] = False
    split: str = option("test", "the split to score", choices=SPLITS, noun="split")
    iwae_samples: int = option(0, "also report the IWAE bound with K samples (0: off)", low=0,
                               high=MAX_DRAWS, metavar="K")
    elbo_samples: int | None = option(None, "draws of z per datapoint in the ELBO estimate (unset: ten "
                                      "times the run's --eval-samples)", low=1, high=MAX_DRAWS, metavar="K")
    batch_size: int | None = option(None, "datapoints per batch (unset: the run's --eval-batch-size)",
                                    low=1)
    subset: int | None = option(None, "only the split's first N datapoints, for a quick check (unset: "
                                "all)", low=1, metavar="N")
    seed: int = option(0, "seeds the draws of z and the preprocessing noise", low=0, high=SEED_MAX)


@dataclass(frozen=True)
class SampleOptions:
    """`aevb sample`'s options and `Run.sample`'s parameters."""

    in_files: typing.ClassVar[bool] = False
    n: int = option(64, "number of samples", low=1, high=MAX_DRAWS)
    label: int | None = option(None, "condition a label-conditioned model on this class", low=0)
    cluster: int | None = option(None, "draw from one mixture component of a model with clusters", low=0)
    mode: str = option("sample", "a draw from p(x|z), its mean, or the decoder's parameter",
                       choices=("sample", "mean", "param"), noun="mode")
    seed: int = option(0, "seeds the draws", low=0, high=SEED_MAX)


@dataclass(frozen=True)
class EncodeOptions:
    """`aevb encode`'s numbers and `Run.codes`'s (and `Run.encode`'s) parameters."""

    in_files: typing.ClassVar[bool] = False
    split: str = option("test", "the split to encode", choices=SPLITS, noun="split")
    batch_size: int = option(1000, "datapoints per batch", low=1)
    seed: int = option(0, "seeds the preprocessing noise and a sequential model's trajectory", low=0,
                       high=SEED_MAX)


def options(cls, where: str, **values):
    """`cls` (EvaluateOptions ...) with `values` checked as a config file's are: one line naming the
    option on a wrong type or value.

        >>> options(SampleOptions, "Run.sample", n=3, label=7).label
        7
    """
    return replace_checked(cls(), values, where)

try:  # `int | None` builds types.UnionType, `Optional[int]` builds typing.Union
    from types import UnionType as _UnionType
except ImportError:  # pragma: no cover
    _UnionType = typing.Union


def field_types(cls) -> dict[str, Any]:
    """The resolved type of every field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def meta(cls, name: str) -> dict:
    """A field's help, choices and checks (see `option`); {} for a field declared without."""
    return dict(next(f.metadata for f in dataclasses.fields(cls) if f.name == name))


def flags(cls) -> list[str]:
    """The fields of a config dataclass that are command-line options (see `option`'s `flag`)."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("flag", True)]


def flag(key: str) -> str:
    """The command-line flag of a config key: batch_size -> --batch-size."""
    return "--" + key.replace("_", "-")


def named(cls, key: str, where: str) -> str:
    """How a message names an option: "WHERE: key (--key or 'key' in a config file)", or for a
    command's option "--key (key= of Run.method)"."""
    if getattr(cls, "in_files", True):
        at = "" if where == "command line" else f"{where}: "
        return f"{at}{key} ({flag(key)} or '{key}' in a config file)"
    return f"{flag(key)} ({key}= of {where})"


def check_value(cls, name: str, value: Any, where: str) -> Any:
    """`value` if it fits field `name` of `cls` (ints widen to floats), else an AevbError: the
    field's type, then its allowed values and range."""
    kind = field_types(cls)[name]
    allowed = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, _UnionType) else (kind,)
    if value is None and type(None) in allowed:
        return None
    if meta(cls, name).get("json_object"):
        return _json_object(cls, name, value, where)
    for t in allowed:  # numpy's scalars count as the numbers they are
        if t is float and isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
            return _in_range(cls, name, float(value), where)
        if t is int and isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
            return _in_range(cls, name, int(value), where)
        if t in (str, bool) and isinstance(value, t):
            return _in_range(cls, name, value, where)
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    if getattr(cls, "in_files", True):
        raise AevbError(f"{where}: '{name}' must be {names}, got {value!r}")
    raise AevbError(f"{named(cls, name, where)} must be {names}, got {value!r}")


def _json_object(cls, name: str, value: Any, where: str) -> str:
    """A dict, or the JSON text of an object, as canonical JSON text (sorted keys)."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except json.JSONDecodeError as e:
            raise AevbError(f"{named(cls, name, where)} is not valid JSON ({e.msg}); give an object "
                            "like '{\"width\": 64}'") from None
    if not isinstance(value, dict):
        raise AevbError(f"{named(cls, name, where)} must be an object of keyword arguments (a table, a "
                        f"dict or JSON), got {value!r}")
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise AevbError(f"{named(cls, name, where)} must hold plain values (numbers, strings, lists): "
                        f"{e}") from None


def _in_range(cls, name: str, value: Any, where: str) -> Any:
    m, key = meta(cls, name), named(cls, name, where)
    if m.get("choices") and value not in m["choices"]:
        at = "" if where == "command line" else f"{where}: "
        raise AevbError(f"{at}unknown {m['noun'] or name} {value!r}; choose one of {', '.join(m['choices'])}")
    if m.get("low") is not None and value < m["low"]:
        raise AevbError(f"{key} must be at least {m['low']}, got {value}")
    if m.get("high") is not None and value > m["high"]:
        raise AevbError(f"{key} must be at most {m['high']}, got {value}")
    if m.get("positive") and not (0 < value and math.isfinite(value)):
        raise AevbError(f"{key} must be a positive number, got {value}")
    if m.get("fraction") and not 0 <= value < 1:
        raise AevbError(f"{key} must be in [0, 1), got {value}")
    return value


def to_toml(config: dict) -> str:
    """A config dict (`RunConfig.to_dict`) as a TOML recipe that `--config` reads back; an unset
    value (None) is written as a comment, since TOML has no null.

        >>> print(to_toml({"model": "fa", "train": {"epochs": 3, "max_steps": None}}))
        model = "fa"
        <BLANKLINE>
        [train]
        epochs = 3
        # max_steps: unset
        <BLANKLINE>
    """
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, values in config.items():
        if isinstance(values, dict):
            lines += ["", f"[{section}]"]
            lines += [f"# {k}: unset" if v is None else f"{k} = {value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def check_types(raw: dict, types: dict[str, type], where: str) -> None:
    """Each key of `raw` named in `types` has that type (a float may be written as an integer); a
    wrong one is an AevbError naming the file, the key and the type expected.

        check_types({"train": "fast"}, {"train": dict}, "my.toml")
        # AevbError: my.toml: 'train' must be a table ([train] in TOML, an object in JSON), got
        # the string 'fast'
    """
    for key, kind in types.items():
        value = raw.get(key)
        numeric = kind is float and isinstance(value, int | float) and not isinstance(value, bool)
        if key not in raw or numeric or (isinstance(value, kind) and not isinstance(value, bool)):
            continue
        expected = {dict: f"a table ([{key}] in TOML, an object in JSON)", str: "a string", float: "a number",
                    int: "an integer"}[kind]
        raise AevbError(f"{where}: {key!r} must be {expected}, got {describe(value)}")


def describe(value) -> str:
    """A value as a message names it: "the string 'x'", "null", "the table {...}"."""
    if value is None:
        return "null (no value)"
    kinds = {bool: "the boolean", str: "the string", int: "the number", float: "the number",
             list: "the list", dict: "the table"}
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{kinds.get(type(value), 'the value')} {shown}"


def replace_checked(obj, values: dict, where: str):
    """`dataclasses.replace` that names unknown keys and wrong values in one line."""
    known = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise AevbError(
            f"{where}: unknown option {unknown[0]!r}; known options are {', '.join(sorted(known))}"
        )
    checked = {k: check_value(type(obj), k, v, where) for k, v in values.items()}
    return dataclasses.replace(obj, **checked)


def config_from_dict(d: dict, model_cls) -> RunConfig:
    """Rebuild a saved RunConfig (the inverse of `RunConfig.to_dict`), each value checked."""
    where = "saved run config"
    if not isinstance(d, dict):
        raise AevbError(f"{where} must be a table (a JSON object), got {describe(d)}")
    check_types(d, {"model": str, "model_config": dict, "data": dict, "train": dict}, where)
    return RunConfig(
        model=d["model"],
        model_config=replace_checked(model_cls.Config(), d.get("model_config", {}), where),
        data=replace_checked(DataConfig(), d.get("data", {}), where),
        train=replace_checked(TrainConfig(), d.get("train", {}), where),
    )
