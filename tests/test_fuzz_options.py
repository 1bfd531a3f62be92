"""Property-based tests of every value a user types or edits: the options of every command and of
`Run`'s methods, every config key of every model, and the structure of config.json and TOML files.
Each either works or is refused with our own one-line AevbError (exit 2 on the command line)."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aevb.api import Run
from aevb.cli import main
from aevb.config import DataConfig, EncodeOptions, EvaluateOptions, SampleOptions, TrainConfig, flags
from aevb.errors import AevbError
from aevb.models import registry
from aevb.runs.resolve import RECIPE_KEYS, build_config, sections

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# What a typo, a hand edit or a wrong variable puts where a value belongs.
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 12), st.sampled_from([2**31, 2**63, 2**70, -2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.builds(np.int64, st.integers(-3, 12)), st.builds(np.float32, st.floats(-3, 3)),
    st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)


def refused_in_one_line(error: AevbError) -> None:
    assert str(error) and "\n" not in str(error), str(error)


@pytest.fixture(scope="module")
def fa_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fa") / "run"
    assert main(["train", "fa", "--max-steps", "2", "--out", str(run), "--quiet"]) == 0
    return Run(run)


# A call of each method with settings that keep it quick; the fuzzed option replaces one of them.
METHODS = {"evaluate": (EvaluateOptions, {"subset": 5, "elbo_samples": 2}),
           "sample": (SampleOptions, {"n": 3}),
           "codes": (EncodeOptions, {})}


@FUZZ
@given(data=st.data())
def test_every_option_of_every_run_method_works_or_is_refused_in_one_line(fa_run, data):
    method = data.draw(st.sampled_from(sorted(METHODS)))
    cls, quick = METHODS[method]
    key, value = data.draw(st.sampled_from(flags(cls))), data.draw(VALUES)
    if key in ("iwae_samples", "elbo_samples", "subset") and isinstance(value, int) and value > 12:
        value = 12  # a valid but large amount of work: not what this test is about
    try:
        getattr(fa_run, method)(**{**quick, key: value})
        event(f"{method} ran")
    except AevbError as e:
        refused_in_one_line(e)
        event(f"{method} refused")


@FUZZ
@given(data=st.data())
def test_every_config_key_of_every_model_works_or_is_refused_in_one_line(data):
    model = data.draw(st.sampled_from(sorted(registry.MODELS)))
    keys = [k for cls in (DataConfig, TrainConfig, registry.get(model).Config) for k in flags(cls)]
    key, value = data.draw(st.sampled_from(keys)), data.draw(VALUES)
    try:
        cfg = build_config(model, [("fuzz", sections(model, {key: value}))])
    except AevbError as e:
        refused_in_one_line(e)
        event("refused")
        return
    event("built")
    section = next(s for s in ("data", "train", "model_config") if hasattr(getattr(cfg, s), key))
    kept = getattr(getattr(cfg, section), key)
    assert type(kept) in (int, float, str, bool, type(None))  # plain values, as config.json saves them
    assert not (isinstance(kept, float) and math.isnan(kept))


# -- config files: any structure, as JSON (a run's config.json) and as TOML ---------------------

KEYS = st.sampled_from(sorted(RECIPE_KEYS) + ["extra"])
FIELDS = st.sampled_from(sorted({k for cls in (DataConfig, TrainConfig) for k in flags(cls)} | {"latent_dim",
                                                                                               "zzz"}))
SECTION = st.one_of(VALUES, st.dictionaries(FIELDS, VALUES, max_size=3))
FILES = st.dictionaries(KEYS, st.one_of(st.sampled_from(list(registry.MODELS)), SECTION), max_size=4)


def toml_value(v) -> str:
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(float(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return '""'  # None: TOML has no null; an empty string stands in


def to_toml(doc: dict) -> str:
    top = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    tables = [f"[{k}]\n" + "".join(f"{json.dumps(f)} = {toml_value(x)}\n" for f, x in v.items())
              for k, v in doc.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(tables)


def plain(v):
    """A value JSON can hold (numpy's scalars as the numbers they are; NaN as JSON's NaN)."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v.item() if isinstance(v, np.generic) else v


@FUZZ
@given(doc=FILES, as_toml=st.booleans(), model=st.sampled_from(["fa", "vae"]))
def test_any_config_file_structure_is_read_or_refused_in_one_line_naming_the_file(
        tmp_path, capsys, doc, as_toml, model):
    path = tmp_path / ("recipe.toml" if as_toml else "config.json")
    path.write_text(to_toml(doc) if as_toml else json.dumps(plain(doc)))
    code = main(["train", model, "--config", str(path), "--print-config"])
    out, err = capsys.readouterr()
    assert code in (0, 2), err
    event(f"exit {code}")
    if code == 2:
        assert err.startswith("aevb: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    else:
        assert out.startswith("model = ") and err == ""
