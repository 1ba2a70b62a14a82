"""Presets map onto the typed config; every kind of bad input is refused with a message naming it."""
import dataclasses

import pytest

from conftest import PRESETS
from workbench.core.config import ExperimentConfig, RunConfig, describe_range
from workbench.core.errors import ConfigError
from workbench.core.registry import ALGORITHMS, FAMILIES


def write(tmp_path, text, name="p.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = '[task]\nfamily = "sinusoid"\n[algorithm]\nname = "maml"\n'


def test_every_shipped_preset_loads_and_cites_its_source():
    paths = sorted(PRESETS.glob("*.toml"))
    algos = set()
    for p in paths:
        try:
            cfg = ExperimentConfig.load(p)
        except ConfigError as e:  # a family this machine cannot run (MuJoCo missing) is refused with the reason
            assert "is not available here" in str(e) and "install" in str(e), e
            continue
        assert cfg.meta.source and cfg.meta.description, p
        assert cfg.meta.name == p.stem
        algos.add(cfg.algorithm_name + ("-fo" if getattr(cfg.algorithm, "first_order", False) else ""))
    assert {"maml", "maml-fo", "reptile", "metasgd", "anil", "pretrained", "scratch"} <= algos


def test_maml_preset_is_the_paper_setup():
    cfg = ExperimentConfig.load(PRESETS / "maml-sinusoid.toml")
    assert cfg.model.hidden == [40, 40] and cfg.model.activation == "relu"
    assert cfg.task.shots == 10 and cfg.task.amp_min == 0.1 and cfg.task.amp_max == 5.0
    a = cfg.algorithm
    assert (a.inner_lr, a.inner_steps, a.meta_batch, a.outer_lr, a.first_order) == (0.01, 1, 25, 1e-3, False)


def test_defaults_ranges_and_help_on_every_field():
    for _, cls in FAMILIES.items():
        for f in dataclasses.fields(cls.Config):
            assert f.metadata["help"], (cls, f.name)
    for _, cls in ALGORITHMS.items():
        assert cls.families
        for f in dataclasses.fields(cls.Config):
            assert f.metadata["help"], (cls, f.name)
    ranges = {f.name: describe_range(f) for f in dataclasses.fields(RunConfig)}
    assert ranges["iterations"] == "[0, 10000000]"


def test_round_trip_through_toml(tmp_path):
    cfg = ExperimentConfig.load(PRESETS / "metasgd-sinusoid.toml", ["algorithm.lr_init_max=0.2"])
    again = ExperimentConfig.load(write(tmp_path, cfg.to_toml()))
    assert again == cfg and again.algorithm.lr_init_max == 0.2


def test_overrides_are_typed(tmp_path):
    cfg = ExperimentConfig.load(write(tmp_path, GOOD), ["algorithm.inner_lr=0.5", "algorithm.first_order=true",
                                                        "model.hidden=[8, 8, 8]", "run.device=cpu"])
    assert cfg.algorithm.inner_lr == 0.5 and cfg.algorithm.first_order is True
    assert cfg.model.hidden == [8, 8, 8] and cfg.run.device == "cpu"


@pytest.mark.parametrize("text, overrides, expected", [
    ("[task\nfamily=", [], "malformed TOML"),
    (GOOD + "[run]\niteratons = 5\n", [], "unknown key 'iteratons' (did you mean 'iterations'?)"),
    (GOOD, ["algorithm.inner_lrr=0.1"], "unknown key 'inner_lrr' (did you mean 'inner_lr'?)"),
    (GOOD, ["run.iterations=abc"], "iterations = 'abc': expected an integer"),
    (GOOD, ["algorithm.first_order=3"], "first_order = 3: expected true or false"),
    (GOOD, ["algorithm.inner_lr=-1"], "inner_lr = -1.0: out of range"),
    (GOOD, ["algorithm.inner_lr=0"], "inner_lr = 0.0: out of range, allowed (0.0, 10.0]"),
    (GOOD, ["model.activation=relux"], "did you mean 'relu'?"),
    (GOOD, ["task.amp_min=9"], "amp_min = 9.0 is above amp_max = 5.0"),
    (GOOD.replace("sinusoid", "sinusiod"), [], "unknown task family 'sinusiod' (did you mean 'sinusoid'?)"),
    (GOOD.replace("maml", "mamal"), [], "unknown algorithm 'mamal' (did you mean 'maml'?)"),
    (GOOD + "[trainer]\n", [], "unknown section [trainer]"),
    (GOOD.replace('"maml"', '["maml"]'), [], "algorithm must be a string, got ['maml']"),
    (GOOD, ["run.device=7"], "device = 7: expected a string"),
    ("[algorithm]\nname = 'maml'\n", [], "[task] needs a 'family' key"),
    (GOOD, ["inner_lr=0.1"], "expected section.key=value"),
    (GOOD, ["algorithm.inner_lr"], "expected section.key=value"),
])
def test_bad_input_names_the_problem(tmp_path, text, overrides, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.load(path, overrides)
    assert expected in str(e.value)
    assert "--set" in str(e.value) or str(path) in str(e.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no-such.toml: no such file"):
        ExperimentConfig.load(tmp_path / "no-such.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        ExperimentConfig.load(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a text file"):
        ExperimentConfig.load(binary)


def test_algorithm_that_does_not_support_the_family(tmp_path, monkeypatch):
    from workbench.core.registry import FAMILIES as reg
    from workbench.tasks.sinusoid import Sinusoid

    class Toy(Sinusoid):  # a family of a kind no supervised learner takes
        name = "toy"
        kind = "rl"

    monkeypatch.setitem(reg._items, "toy", Toy)
    with pytest.raises(ConfigError, match=r"algorithm 'maml' does not support family 'toy'; it supports: "
                                          r"([\w-]+, )*sinusoid"):
        ExperimentConfig.load(write(tmp_path, GOOD.replace("sinusoid", "toy")))


def test_a_preset_naming_an_unavailable_family_is_refused_with_the_reason(monkeypatch):
    from workbench.core.config import ExperimentConfig
    from workbench.core.errors import ConfigError
    from workbench.core.registry import FAMILIES

    monkeypatch.setattr(FAMILIES.get("navigation"), "available",
                        classmethod(lambda c: (False, "install the thing: pip install thing")), raising=False)
    with pytest.raises(ConfigError, match="'navigation' is not available here: install the thing"):
        ExperimentConfig.load(PRESETS / "maml-trpo-navigation.toml")
