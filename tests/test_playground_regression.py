"""The regression playground's core (no Qt): step-by-step adaptation of a model and its baseline to
hand-placed support points, each with the inner rule it was trained with; validation; cancelling."""
import dataclasses
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config
from workbench.services.bundle import MetaModel, load_bundle
from workbench.core.errors import WorkbenchError
from workbench.services.playground_regression import (PlaygroundError, RegressionSession, StepResult,
                                                  describe_rule)
from workbench.services.trainer import Trainer


RUNS = {"maml": lambda: tiny_config("maml", 1500), "pretrained": lambda: tiny_config("pretrained", 800),
        "metasgd": lambda: tiny_config("metasgd", 60), "anil": lambda: tiny_config("anil", 60),
        # a baseline whose fine-tuning rate differs from the model's: it must keep its own
        "pretrained-lr": lambda: tiny_config("pretrained", 60).replace(["algorithm.inner_lr=0.03"])}
_TRAINED: dict = {}


def trained_sinusoid(name: str, tmp_path_factory) -> Path:
    """The bundle of the tiny sinusoid run ``name`` (a run folder in one runs folder), trained once per test
    session: tests/gui/test_playground_regression.py plays with the same maml and pretrained runs."""
    if name not in _TRAINED:
        root = _TRAINED.setdefault("<root>", tmp_path_factory.mktemp("sinusoid-runs"))
        _TRAINED[name] = Path(Trainer(RUNS[name](), root / name).run().bundle_path)
    return _TRAINED[name]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {name: load_bundle(trained_sinusoid(name, tmp_path_factory)) for name in RUNS}


def _with(model, **meta_or_rule):
    """A copy of ``model`` with another adaptation rule field or metadata entry (no new bundle needed)."""
    rule = dataclasses.replace(model.rule, **{k: v for k, v in meta_or_rule.items() if k in ("lrs", "steps")})
    meta = {**model.meta, **{k: v for k, v in meta_or_rule.items() if k in ("family", "algorithm")}}
    return MetaModel(model.path, model.network, model.params, rule, meta, model.family)


def test_steps_lower_the_support_loss_of_a_trained_maml_model(models):
    session = RegressionSession(models["maml"], models["pretrained"])
    x, y = session.sample_points(10, 2.0, 0.7, seed=3)
    results = list(session.steps(x, y, 10, true=(2.0, 0.7)))
    assert [r.step for r in results] == list(range(11))
    assert all(isinstance(r, StepResult) for r in results)
    support = [r.support_loss for r in results]
    assert all(b < a for a, b in zip(support, support[1:])), support
    assert results[-1].query_loss < results[0].query_loss
    r = results[-1]
    assert r.grid_x.shape == r.prediction.shape == r.baseline_prediction.shape == (200,)
    assert r.grid_x.dtype == np.float64 and np.isfinite(r.prediction).all()
    assert r.grid_x[0] == pytest.approx(-5.0) and r.grid_x[-1] == pytest.approx(5.0)
    assert r.baseline_support_loss < results[0].baseline_support_loss
    assert r.baseline_query_loss is not None
    # the query loss is the MSE against the true function on the grid
    gx, truth = session.true_curve(2.0, 0.7)
    assert np.array_equal(gx, r.grid_x)
    assert r.query_loss == pytest.approx(float(np.mean((r.prediction - truth) ** 2)), rel=1e-4)
    # points without a known true function: no query loss
    unknown = list(session.steps(x, y, 2))
    assert all(u.query_loss is None and u.baseline_query_loss is None for u in unknown)
    assert [u.support_loss for u in unknown] == support[:3]


@pytest.mark.parametrize("algo", ["metasgd", "anil", "maml"])
def test_each_step_is_the_models_own_inner_rule(models, algo):
    """Meta-SGD's learned per-parameter rates, ANIL's head-only steps: the same predictions as MetaModel.adapt."""
    model = models[algo]
    if algo == "metasgd":
        assert all(isinstance(lr, torch.Tensor) for lr in model.rule.lrs)
        assert "per-parameter" in describe_rule(model)
    if algo == "anil":
        assert "head" in describe_rule(model)
    session = RegressionSession(model)
    x, y = session.sample_points(7, 3.0, 2.0, seed=1)
    for r in session.steps(x, y, 4):
        expected = model.adapt(x, y, steps=r.step).predict(r.grid_x)[:, 0]
        np.testing.assert_array_equal(r.prediction.astype(np.float32), expected)
        assert r.baseline_prediction is None and r.baseline_support_loss is None


def test_the_baseline_adapts_with_its_own_rule(models):
    model, baseline = models["maml"], models["pretrained-lr"]
    assert baseline.rule.lrs[0] == pytest.approx(0.03) and model.rule.lrs[0] == pytest.approx(0.01)
    session = RegressionSession(model, baseline)
    x, y = session.sample_points(10, 4.0, 1.0, seed=0)
    for r in session.steps(x, y, 3):
        want = baseline.adapt(x, y, steps=r.step).predict(r.grid_x)[:, 0]
        np.testing.assert_array_equal(r.baseline_prediction.astype(np.float32), want)
        np.testing.assert_array_equal(r.prediction.astype(np.float32),
                                      model.adapt(x, y, steps=r.step).predict(r.grid_x)[:, 0])


def test_going_on_step_by_step_equals_one_run(models):
    session = RegressionSession(models["maml"], models["pretrained"])
    x, y = session.sample_points(5, 1.0, 0.0, seed=2)
    whole = list(session.steps(x, y, 4))
    a = session.start(x, y)
    parts = list(a.run(2)) + list(a.run(1)) + list(a.run(1))
    assert [r.step for r in parts] == [0, 1, 2, 3, 4]
    for p, w in zip(parts, whole):
        np.testing.assert_array_equal(p.prediction, w.prediction)
        np.testing.assert_array_equal(p.baseline_prediction, w.baseline_prediction)
    b = session.start(x, y)
    b.skip(3)  # back to a state already shown, then on
    (r,) = list(b.run(1))
    assert r.step == 4
    np.testing.assert_array_equal(r.prediction, whole[4].prediction)


def test_validation_names_the_problem(models):
    session = RegressionSession(models["maml"])
    assert session.x_range == (-5.0, 5.0) and session.amp_range == (0.1, 5.0)
    assert session.phase_range == pytest.approx((0.0, np.pi))
    with pytest.raises(PlaygroundError, match="at least 1 support point"):
        session.validate([], [])
    with pytest.raises(PlaygroundError, match="at least 1 support point"):
        session.steps([], [], 5)
    with pytest.raises(PlaygroundError, match="at least 1 support point"):
        session.sample_points(0, 1.0, 1.0)
    with pytest.raises(PlaygroundError, match=r"x = 6\.2 is outside the family's input range \[-5, 5\]"):
        session.validate([0.0, 6.2], [1.0, 1.0])
    with pytest.raises(PlaygroundError, match=r"y = 40"):
        session.validate([0.0], [40.0])
    with pytest.raises(PlaygroundError, match=r"support point 2 has a non-finite value \(x=nan"):
        session.validate([0.0, float("nan")], [1.0, 1.0])
    with pytest.raises(PlaygroundError, match="non-finite"):
        session.validate([0.0], [float("inf")])
    with pytest.raises(PlaygroundError, match="2 x values but 1 y values"):
        session.validate([0.0, 1.0], [1.0])
    with pytest.raises(PlaygroundError, match=r"amplitude 9 is outside the family's range \[0.1, 5\]"):
        session.sample_points(5, 9.0, 1.0)
    with pytest.raises(PlaygroundError, match="phase"):
        session.steps([0.0], [1.0], 3, true=(1.0, -2.0))
    assert issubclass(PlaygroundError, WorkbenchError)
    x, y = session.sample_points(4, 1.0, 1.0, seed=5)
    assert len(x) == 4 and (np.abs(x) <= 5).all()
    np.testing.assert_allclose(y, 1.0 * np.sin(x - 1.0), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(session.sample_points(4, 1.0, 1.0, seed=5)[0], x)  # seeded


def test_a_diverging_prediction_is_a_clear_error(models):
    model = _with(models["maml"], lrs=[1e5] * len(models["maml"].rule.lrs))
    session = RegressionSession(model)
    x, y = session.sample_points(10, 5.0, 0.0, seed=0)
    seen = []
    with pytest.raises(PlaygroundError, match=r"prediction diverged at step \d+; fewer steps or another model"):
        for r in session.steps(x, y, 100):
            seen.append(r.step)
    assert seen and seen[0] == 0
    # a diverging baseline says so
    session = RegressionSession(models["maml"], _with(models["pretrained"], lrs=[1e5] * 6))
    with pytest.raises(PlaygroundError, match=r"baseline's \(pretrained\) prediction diverged"):
        list(session.steps(x, y, 100))


def test_cancel_stops_the_generator_early(models):
    session = RegressionSession(models["maml"], models["pretrained"])
    x, y = session.sample_points(10, 2.0, 1.0)
    cancel = threading.Event()
    got = []
    for r in session.steps(x, y, 100, cancel=cancel):
        got.append(r.step)
        if r.step == 3:
            cancel.set()
    assert got == [0, 1, 2, 3]
    assert list(session.steps(x, y, 100, cancel=cancel)) == []  # already cancelled: nothing


def test_which_models_the_playground_takes(models, monkeypatch):
    assert RegressionSession.supports(models["maml"]) and RegressionSession.why_not(models["maml"]) == ""
    assert not RegressionSession.supports(None)
    rl = types.SimpleNamespace(meta={"family": "navigation", "algorithm": "maml-trpo"})
    assert not RegressionSession.supports(rl)
    assert "trajectories" in RegressionSession.why_not(rl)
    other = _with(models["maml"], family="polynomial")
    assert "'polynomial'" in RegressionSession.why_not(other)
    with pytest.raises(PlaygroundError, match="polynomial"):
        RegressionSession(other)
    stranger = _with(models["pretrained"], family="sinusoid-2")
    with pytest.raises(PlaygroundError, match="baseline: .*'sinusoid-2'"):
        RegressionSession(models["maml"], stranger)
    monkeypatch.setattr("workbench.services.playground_regression.SUPPORTED_FAMILIES", ("sinusoid", "sinusoid-2"))
    with pytest.raises(PlaygroundError, match="same family"):
        RegressionSession(models["maml"], stranger)
    with pytest.raises(PlaygroundError, match="baseline:"):
        RegressionSession(models["maml"], rl)
    assert RegressionSession(models["maml"]).baseline is None


# -- what the page shows, without Qt ------------------------------------------------------------------------
def test_slider_positions_and_values_map_both_ways():
    from workbench.services.playground_regression import tick_value, value_tick

    assert tick_value(0, 0.1, 5.0) == pytest.approx(0.1) and tick_value(200, 0.1, 5.0) == pytest.approx(5.0)
    assert tick_value(100, 0.0, np.pi) == pytest.approx(np.pi / 2)
    assert value_tick(2.55, 0.1, 5.0) == 100 and value_tick(tick_value(37, 0.1, 5.0), 0.1, 5.0) == 37
    assert value_tick(99.0, 0.1, 5.0) == 200 and value_tick(-3.0, 0.1, 5.0) == 0  # clamped
    assert value_tick(1.0, 2.0, 2.0) == 0  # an empty range


def test_log_ticks_label_decades_and_label_2_and_5_only_on_a_short_axis():
    from workbench.services.playground_regression import log_ticks

    major, minor = log_ticks(-3, 1)
    assert [v for v, _ in major] == [-3.0, -2.0, -1.0, 0.0, 1.0] and [t for _, t in major][0] == "0.001"
    assert len(minor) > 20 and all(text == "" for _, text in minor)  # four decades: minor ticks unlabelled
    major, minor = log_ticks(-1.2, 0.5)
    labels = [text for _, text in minor]
    assert [t for _, t in major] == ["0.1", "1"] and "0.2" in labels and "5" not in labels and "0.3" not in labels
    assert all(-1.2 <= v <= 0.5 for v, _ in major + minor)


def test_the_loss_view_changes_only_when_the_losses_leave_it():
    from workbench.services.playground_regression import loss_view

    view = loss_view(10, np.array([0.1, 1.0]), None)
    assert view[0] == 10 and view[1] < -1.0 and view[2] > 0.0
    assert loss_view(10, np.array([0.2, 0.5]), view) is None  # still inside: no new range
    assert loss_view(10, np.array([1e-3, 0.5]), view)[1] < np.log10(1e-3)
    assert loss_view(20, np.array([0.2]), view)[0] == 20  # more steps planned
    assert loss_view(10, np.array([np.nan, 0.0]), None) is None  # nothing to show on a log axis
    lo, hi = loss_view(5, np.array([0.3, 0.3]), None)[1:]
    assert lo < np.log10(0.3) < hi and hi - lo == pytest.approx(0.1)  # a flat curve: a margin of 0.05 decade


def test_the_pacer_shows_a_step_every_60_ms_and_a_long_adaptation_in_about_2_s():
    from workbench.services.playground_regression import StepPacer

    pacer = StepPacer(0.06, 2.0)
    pacer.start(10, now=100.0)
    assert pacer.due(100.0) == 1
    pacer.showed(1)
    assert pacer.due(100.05) == 0 and pacer.due(100.07) == 1 and pacer.due(100.25) == 4
    pacer.start(100, now=0.0)  # 100 steps: 20 ms apart
    assert pacer.step_interval == pytest.approx(0.02) and pacer.due(1.01) == 51 and pacer.due(2.01) == 101


def test_the_summary_and_captions_give_the_losses_before_and_after():
    from workbench.services.playground_regression import adaptation_summary, step_caption

    grid = np.zeros(3)
    first = StepResult(0, grid, grid, grid, 1.5, 2.0, 1.2, 2.5)
    last = StepResult(3, grid, grid, grid, 0.0123, 0.5, 0.9, 2.25)
    text = adaptation_summary([first, last], "maml", "pretrained")
    assert text == ("maml: support MSE 1.5 → 0.0123, query MSE 2 → 0.5 after 3 steps; "
                    "pretrained: support 1.2 → 0.9, query 2.5 → 2.25")
    alone = StepResult(1, grid, grid, None, 0.5, None, None, None)
    assert adaptation_summary([first, alone], "maml") == "maml: support MSE 1.5 → 0.5 after 1 step"
    assert step_caption(3, 0.0123, 0.5) == "step 3: support MSE 0.0123, query MSE 0.5"
    assert step_caption(0, 1.0, None) == "step 0: support MSE 1"


def test_the_support_set_forgets_the_true_function_when_a_point_is_placed_by_hand(models):
    from workbench.services.playground_regression import SupportSet

    session = RegressionSession(models["maml"])
    sup = SupportSet()
    assert len(sup) == 0 and sup.describe() == "no points yet" and sup.nearest([], [], 0.0, 0.0)[0] == -1
    x, y = session.sample_points(4, 2.0, 1.0, seed=0)
    sup.replace(x, y, (2.0, 1.0))
    assert len(sup) == 4 and sup.true == (2.0, 1.0) and "sampled from A sin(x − φ), A = 2.00" in sup.describe()
    assert sup.remove(1) and sup.true == (2.0, 1.0) and len(sup) == 3  # the rest are still samples of it
    assert not sup.remove(7)
    sup.add(0.5, 0.25)
    assert sup.true is None and sup.x[-1] == 0.5 and "placed by hand" in sup.describe()
    assert sup.nearest([0.0, 10.0, 20.0], [0.0, 0.0, 0.0], 12.0, 1.0) == (1, pytest.approx(np.hypot(2, 1)))
    sup.replace([0.0, 9.0, -2.0], [1.0, 1.0, 40.0], (2.0, 1.0))  # x = 9 and y = 40 do not fit the family
    sup.keep_fitting(session)
    assert sup.x == [0.0] and sup.y == [1.0] and sup.true is None
    sup.replace([0.0], [1.0], (2.0, 1.0))
    sup.keep_fitting(session)
    assert sup.true == (2.0, 1.0)  # all fit: still known
    sup.clear()
    assert len(sup) == 0 and sup.true is None
