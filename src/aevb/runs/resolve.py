"""A run's config, built once: the one function (`build_config`) behind `aevb train`, `--resume`,
`aevb reproduce`, `aevb sweep` and Python's `aevb.runs.config`.

Layers, lowest first: the model's recipe (or, when resuming, the run's saved config), then each
source in order (a `--config` TOML file, command-line flags, keyword arguments). Every value is
checked once as it enters (`aevb.config`), then across fields, then against the model and the
device; options whose default depends on them are filled in; the result is frozen.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from aevb import starts
from aevb.config import (
    SECTIONS,
    DataConfig,
    RunConfig,
    TrainConfig,
    check_types,
    field_types,
    flag,
    replace_checked,
)
from aevb.data.sources import absolute
from aevb.errors import AevbError
from aevb.models import registry
from aevb.runtime import distributed
from aevb.runtime.devices import autocast, resolve_device, resolve_precision

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RECIPES = Path(__file__).resolve().parent.parent / "configs"  # the published recipes, as package data

# A recipe file's top-level keys and their types. `description`, `pretrained` (the shipped model it
# made) and `[reference]` (the published number it reproduces) are read by `aevb reproduce`.
RECIPE_KEYS = {"model": str, "model_config": dict, "data": dict, "train": dict, "description": str,
               "pretrained": str, "reference": dict}
REFERENCE_KEYS = {"metric": str, "value": float, "source": str, "iwae_samples": int}

# What may change when a run is resumed: how long it runs, where, how it steps (so that a run
# stopped by a NaN can go on with a lower learning rate or clipping), what it logs; where its data lives.
RESUMABLE = ("epochs", "max_steps", "device", "compile", "cuda_graphs", "lr", "clip_grad", "on_nan",
             "tensorboard")
RESUMABLE_DATA = ("data_dir",)


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
    unknown = sorted(set(raw) - set(RECIPE_KEYS))
    if unknown:
        raise AevbError(
            f"config file {path}: unknown section {unknown[0]!r}; use model, description, pretrained, "
            "[model_config], [data], [train] and [reference]"
        )
    check_types(raw, RECIPE_KEYS, f"config file {path}")
    check_types(raw.get("reference", {}), REFERENCE_KEYS, f"config file {path}, [reference]")
    return raw


def recipe_names() -> list[str]:
    """The recipes shipped under configs/ (`aevb reproduce --list`)."""
    return sorted(p.stem for p in RECIPES.glob("*.toml"))


def recipe_path(name: str) -> Path:
    """configs/NAME.toml, or NAME itself when it is a path to a .toml file (a recipe of your own)."""
    if name.endswith(".toml"):
        return Path(name)
    path = RECIPES / f"{name}.toml"
    if not path.is_file():
        raise AevbError(f"no recipe {name!r}; `aevb reproduce --list` shows: {', '.join(recipe_names())}")
    return path


def recipe(name: str) -> dict:
    """The parsed recipe file configs/NAME.toml (or the .toml file NAME)."""
    return read_toml(recipe_path(name))


def read_source(value: str | Path) -> tuple[str, dict]:
    """What `--config` names, as a (where, values) source: a recipe name (`aevb reproduce --list`),
    a TOML file, or a run's config.json (its data copy from `aevb.fit` is then read as a file).

        >>> read_source("vae-tutorial")[1]["model"]
        'vae'
    """
    text = str(value)
    if text.endswith(".json"):
        path = Path(text)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise AevbError(f"config file {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AevbError(f"config file {path} is not valid JSON ({e}); give a run's config.json") from None
        if not isinstance(raw, dict) or "model" not in raw:
            raise AevbError(f"{path} is not a run's config.json (it names no model)")
        raw = {k: v for k, v in raw.items() if k in ("model", *SECTIONS)}
        check_types(raw, RECIPE_KEYS, f"config file {path}")
        raw["data"] = {k: v for k, v in raw.get("data", {}).items() if k != "from_memory"}
        return text, raw
    path = recipe_path(text) if not Path(text).is_file() else Path(text)
    return str(path), read_toml(path)


def config(name: str, config_file: str | Path | None = None, **settings) -> RunConfig:
    """A run's config from Python, layered as `aevb train MODEL --config FILE --flag value` layers
    it: `name` is a model (its recipe is the base) or a recipe under configs/ (`aevb reproduce
    --list`); then `config_file`; then `settings`, named as the flags are but in snake case.

        >>> config("vae-tutorial", max_steps=200).train.max_steps
        200
    """
    sources = []
    if name not in registry.MODELS:  # a recipe: its model, and the file as the first layer
        if not (name.endswith(".toml") or (RECIPES / f"{name}.toml").is_file()):
            registry.get(name)  # neither a model nor a recipe: "unknown model", with the choices
        path = recipe_path(name)
        raw = read_toml(path)
        sources.append((str(path), raw))
        name = raw["model"]
    if config_file is not None:
        sources.append(read_source(config_file))
    return build_config(name, sources + [("keyword arguments", sections(name, settings))])


def sections(model: str, settings: dict) -> dict:
    """Settings named as `aevb train`'s flags are, in snake case (epochs=, dataset=, latent_dim=),
    sorted into the sections of a recipe file: {"data": ..., "train": ..., "model_config": ...}."""
    classes = {"data": DataConfig, "train": TrainConfig, "model_config": registry.get(model).Config}
    given: dict[str, dict] = {section: {} for section in classes}
    for key, value in settings.items():
        section = next((s for s, c in classes.items() if key in field_types(c)), None)
        if section is None:
            known = sorted(k for c in classes.values() for k in field_types(c))
            raise AevbError(f"{key!r} is not a setting of {model}; use one of {', '.join(known)}")
        given[section][key] = value
    return given


def build_config(model: str, sources: list[tuple[str, dict]] = (), saved: RunConfig | None = None
                 ) -> RunConfig:
    """The config of a new run of `model`, or with `saved` of a resumed one; each source is a
    (where, values) pair shaped like a recipe file: optional "model_config", "data", "train".

        >>> build_config("vae", [("keyword arguments", {"train": {"epochs": 3}})]).train.epochs
        3
    """
    cls = registry.get(model)
    if saved is None:
        recipe = cls.recipe
        cfg = RunConfig(model, *(replace_checked(c, recipe.get(s, {}), "recipe") for c, s in
                                 zip((cls.Config(), DataConfig(), TrainConfig()), SECTIONS, strict=True)))
    else:
        cfg, sources = saved, [(where, _as_resumed(src)) for where, src in sources]
    for where, src in sources:
        if "model" in src and src["model"] != model:
            raise AevbError(f"{where} is a recipe for model {src['model']!r}, not {model!r}")
        cfg = RunConfig(model, *(replace_checked(getattr(cfg, s), src.get(s, {}), where) for s in SECTIONS))
    if saved is not None:
        _check_unchanged(saved, cfg, sources)
    if cfg.train.lr_schedule != "constant" and cfg.train.lr_decay_from is not None:
        raise AevbError(f"--lr-schedule {cfg.train.lr_schedule} and --lr-decay-from each set the "
                        "learning rate; give one of them")
    if cfg.train.kl_warmup and cfg.train.objective != "elbo":
        raise AevbError(f"--kl-warmup weighs the ELBO's KL term, and --objective {cfg.train.objective} "
                        "has none; drop --kl-warmup or use --objective elbo")
    if saved is None:
        cls.check_config(cfg.model_config)
        starts.check(cfg.model_config)  # e.g. a library the model's start needs
    train = _resolve_for_device(cfg.train, cls)
    model_config = cls.resolve(cfg.model_config, cfg.data.dataset)
    data = dataclasses.replace(cfg.data, dataset=absolute(cfg.data.dataset))  # found from anywhere
    resolved = RunConfig(model, model_config, data, train)
    return resolved



def _as_resumed(src: dict) -> dict:
    """A source's values as a resumed run compares them: a data file by its absolute path, and
    precision "auto" as the run's own, resolved when it started."""
    src = {k: dict(v) if isinstance(v, dict) else v for k, v in src.items()}
    if "dataset" in src.get("data", {}):
        src["data"]["dataset"] = absolute(src["data"]["dataset"])
    if src.get("train", {}).get("precision") == "auto":
        del src["train"]["precision"]
    return src


def _check_unchanged(saved: RunConfig, cfg: RunConfig, sources) -> None:
    """A resumed run may change only RESUMABLE values; one given as it was is no change."""
    allowed = {"train": RESUMABLE, "data": RESUMABLE_DATA, "model_config": ()}
    for _, src in sources:
        for section in SECTIONS:
            for key in src.get(section, {}):
                old, new = getattr(getattr(saved, section), key), getattr(getattr(cfg, section), key)
                if section == "data" and key == "dataset":
                    old = absolute(old)  # older runs saved the path as typed
                if new != old and key not in allowed[section]:
                    may = ", ".join(flag(k) for k in RESUMABLE + RESUMABLE_DATA)
                    raise AevbError(f"{flag(key)} cannot change when resuming (the run has {old!r}, "
                                    f"not {new!r}); only {may} can")


def _resolve_for_device(t: TrainConfig, cls) -> TrainConfig:
    """The precision that will run on the config's device (config.json records it, so a resumed
    run keeps it on any machine); refuse settings that this model or device cannot take."""
    device = resolve_device(t.device)
    t = dataclasses.replace(t, precision=resolve_precision(t.precision, device))
    autocast(device, t.precision)  # refuses bf16 where autocast has none
    if t.compile and not cls.compilable:
        raise AevbError(f"{cls.name} cannot be compiled with torch.compile; drop --compile")
    if t.cuda_graphs and device.type != "cuda":
        raise AevbError(f"--cuda-graphs needs a CUDA device, not {device.type}; drop it or use --device cuda")
    if t.cuda_graphs and distributed.launched():
        raise AevbError("--cuda-graphs does not work across processes (torchrun); drop it")
    return t
