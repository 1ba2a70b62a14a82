"""Finding 8 of the desktop issue, "cluttered plot labels", one test per kind: what the axes, legends and labels
of the live views would draw at their current size does not overlap, fits, and says the right thing.
Payloads and evaluations are made by hand (no training): each test takes a fraction of a second."""
import math

import numpy as np
import pytest
from PySide6.QtGui import QImage, QPainter

from workbench.core.events import Evaluation
from workbench.core.payloads import BanditArms, StateVisitation, Trajectories2D
from workbench.core.stats import mean_ci95
from workbench.gui.plots import AdaptationPlot, MetaLossPlot, RolloutView, heldout_label

PEARL_NAMES = ["no context (prior)", "after 1 episode of context", "after 2 episodes of context",
               "after 3 episodes of context"]


def shown(qtbot, widget, w=900, h=450):
    qtbot.addWidget(widget)
    widget.resize(w, h)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(5)
    return widget


def drawn_ticks(axis) -> list:
    """(rect, text) of each tick label the axis would draw now, from its own draw specs."""
    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    assert specs is not None, "the axis is not laid out"
    return [(rect, text) for rect, _, text in specs[2]]


def assert_tidy(ticks, least=2, most=9):
    texts = [t for _, t in ticks]
    assert least <= len(texts) <= most, texts
    assert len(set(texts)) == len(texts), texts
    rects = [r for r, _ in ticks]
    for i in range(len(rects)):
        for j in range(i + 1, len(rects)):
            assert not rects[i].intersects(rects[j]), f"{texts[i]!r} overlaps {texts[j]!r}"


def evaluation(per, metric="return", refs=None, label="inner step", iteration=10):
    mean, ci = mean_ci95(per)
    return Evaluation(iteration, metric, list(range(per.shape[1])), per, mean, ci, trained_steps=per.shape[1] - 1,
                      references=refs or {}, step_label=label)


# (a) log axes: a few distinct labels, not a pile near 1 ----------------------------------------------------
@pytest.mark.parametrize("size", [(900, 450), (600, 230)])
def test_an_empty_log_axis_shows_a_few_distinct_labels(qtbot, size):
    meta = shown(qtbot, MetaLossPlot(), *size)
    axis = meta.plot.getPlotItem().getAxis("left")
    assert axis.logMode
    assert_tidy(drawn_ticks(axis))
    curves = shown(qtbot, AdaptationPlot(), *size)
    curves.set_metric("mse", 1)
    assert_tidy(drawn_ticks(curves.plot.getPlotItem().getAxis("left")))


@pytest.mark.parametrize("lo, hi", [(0.55, 0.62), (0.5, 1.5), (0.58, 2.3), (0.9, 1.05)])
def test_a_narrow_log_range_shows_distinct_labels_that_do_not_overlap(qtbot, lo, hi):
    meta = shown(qtbot, MetaLossPlot(), 700, 300)
    p = meta.plot.getPlotItem()
    p.setRange(yRange=(math.log10(lo), math.log10(hi)), padding=0)
    qtbot.wait(5)
    ticks = drawn_ticks(p.getAxis("left"))
    assert_tidy(ticks)
    for rect, text in ticks:  # each label says the value at its height
        y = p.vb.mapSceneToView(p.getAxis("left").mapToScene(rect.center())).y()
        assert float(text) == pytest.approx(10 ** y, rel=0.03)


# (b) legends never over the data ------------------------------------------------------------------------------
def _assert_outside(legend, views):
    assert legend.items and legend.isVisible() and legend.geometry().height() > 0
    box = legend.sceneBoundingRect()
    for vb in views:
        assert not box.intersects(vb.sceneBoundingRect()), "the legend covers the plot area"


@pytest.mark.parametrize("width", [1200, 420])
def test_legends_sit_outside_the_plot_area(qtbot, width):
    meta = shown(qtbot, MetaLossPlot(), width, 420)
    p = meta.plot.getPlotItem()
    _assert_outside(p.legend, [p.vb])
    assert p.legend.rows() == 1 if width > 1000 else p.legend.rows() > 1  # narrow: it wraps, still outside
    assert p.legend.sceneBoundingRect().bottom() <= meta.plot.sceneRect().bottom() + 1  # and on screen
    curves = shown(qtbot, AdaptationPlot(), width, 420)
    curves.add_evaluation(evaluation(np.random.default_rng(0).random((20, 4))))
    _assert_outside(curves.plot.getPlotItem().legend, [curves.plot.getPlotItem().vb])


def test_the_rollout_legend_is_a_row_under_the_panels(qtbot):
    view = shown(qtbot, RolloutView(), 700, 500)
    view.show_render(3, _bandits())
    qtbot.wait(5)
    r = view.stack.currentWidget()
    _assert_outside(r.legend, [p.vb for p in r.panels])
    assert all(p.legend is None for p in r.panels)  # no legend inside a panel
    assert r.legend.sceneBoundingRect().top() >= max(p.sceneBoundingRect().bottom() for p in r.panels) - 1


# (c) axis titles fit their axis -------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [1000, 170])
def test_axis_titles_are_elided_to_the_axis_length(qtbot, width):
    from workbench.gui.plots import make_plot

    plot = shown(qtbot, make_plot("narrowPlot", "episode within the trial", "held-out return (%)", integer_x=True),
                 width, 200)
    for side in ("bottom", "left"):
        axis = plot.getPlotItem().getAxis(side)
        label = axis.label
        assert 0 < label.boundingRect().width() <= axis.label_length()  # the text, not cut by the plot's edge
        if "…" in label.toPlainText():
            assert label.toolTip() == axis.labelText
    bottom = plot.getPlotItem().getAxis("bottom")
    assert bottom.labelText == "episode within the trial"  # what the export and the tests read: whole
    if width == 1000:
        assert bottom.label.toPlainText().strip() == "episode within the trial" and not bottom.label.toolTip()
    else:
        assert bottom.label.toPlainText().strip().endswith("…")  # "episode within the tri" is not shown cut
    plot.resize(1000, 300)  # room again: the whole title
    qtbot.wait(5)
    assert bottom.label.toPlainText().strip() == "episode within the trial"


def test_rollout_panel_titles_fit_a_narrow_dock(qtbot):
    view = shown(qtbot, RolloutView(), 380, 380)  # the Rollouts dock beside a wide configuration panel
    view.show_render(1, _bandits())
    qtbot.wait(5)
    r = view.stack.currentWidget()
    assert r.ci.geometry().width() <= r.viewport().width() + 1  # the grid is not cut at the dock's edge
    title = r.panels[0].titleLabel
    assert title.text.endswith("…") and title.toolTip().startswith("best arm") and "→" in title.toolTip()
    view.resize(1200, 600)
    qtbot.wait(5)
    assert title.text == title.toolTip() or not title.toolTip()  # room again: the whole title
    assert "→" in title.text


# (d) reference lines' labels do not overlap ------------------------------------------------------------------
@pytest.mark.parametrize("log", [False, True])
def test_reference_labels_do_not_overlap_each_other_or_the_data(qtbot, log):
    curves = shown(qtbot, AdaptationPlot(), 520, 380)
    curves.log.setChecked(log)
    per = np.clip(0.55 + 0.2 * np.random.default_rng(2).standard_normal((50, 10)), 0.01, 1)
    refs = {"best arm": 0.832, "Thompson sampling": 0.584, "UCB1": 0.568}  # 0.016 apart: 4 px on this plot
    curves.add_evaluation(evaluation(per, refs=refs, label="episode within the trial"))
    qtbot.wait(5)
    labels = curves.references
    rects = labels.scene_rects()
    assert len(rects) == 3 and [ln.value() for ln in curves.reference_lines] == pytest.approx(
        [math.log10(v) if log else v for v in refs.values()])
    for i in range(3):
        for j in range(i + 1, 3):
            assert not rects[i].intersects(rects[j]), (labels._shown[i], labels._shown[j])
    vb = curves.plot.getPlotItem().vb
    for rect in rects:
        assert not rect.intersects(vb.sceneBoundingRect())  # in the margin, not over the curves
        assert vb.sceneBoundingRect().top() - 1 <= rect.center().y() <= vb.sceneBoundingRect().bottom() + 1
    best = vb.mapViewToScene(curves.reference_lines[0].pos()).y()
    assert abs(rects[0].center().y() - best) < 2  # a label with room stays at its line


# (e) counts get whole-number ticks ---------------------------------------------------------------------------
def test_a_three_iteration_run_has_whole_iteration_ticks(qtbot):
    meta = shown(qtbot, MetaLossPlot(), 900, 350)
    meta.x_extent = 3
    meta.add_iterations(np.array([1.0, 2.0, 3.0]), np.array([3.1, 2.7, 2.9]))
    meta.add_evaluation(3, 2.9, 2.6)
    meta.redraw(force_range=True)
    qtbot.wait(5)
    texts = [t for _, t in drawn_ticks(meta.plot.getPlotItem().getAxis("bottom"))]
    assert texts == ["0", "1", "2", "3"]


@pytest.mark.parametrize("steps", [2, 40])
def test_adaptation_steps_get_whole_number_ticks(qtbot, steps):
    curves = shown(qtbot, AdaptationPlot(), 450, 300)
    curves.log.setChecked(False)
    curves.add_evaluation(evaluation(np.random.default_rng(3).random((5, steps + 1)), "mse"))
    qtbot.wait(5)
    ticks = drawn_ticks(curves.plot.getPlotItem().getAxis("bottom"))
    assert_tidy(ticks)
    assert all(t.lstrip("-").isdigit() for _, t in ticks)
    assert {int(t) for _, t in ticks} <= set(range(steps + 1))


@pytest.mark.parametrize("ways", [5, 20, 30])
def test_the_confusion_matrix_labels_as_many_classes_as_fit(qtbot, ways):
    from .test_classification_view import make_payload

    view = shown(qtbot, RolloutView(), 1000, 600)
    view.show_render(1, make_payload(ways=ways, queries=ways, tasks=1))
    qtbot.wait(5)
    plot = view.stack.currentWidget().confusion.plot
    for side in ("bottom", "left"):
        ticks = drawn_ticks(plot.getAxis(side))
        assert_tidy(ticks, most=ways)
        labels = [int(t) for _, t in ticks]
        assert labels[0] == 0 and len(set(np.diff(labels))) <= 1  # every class, or every 2nd, 5th ...
        assert len(labels) == ways if ways == 5 else len(labels) < ways  # 20 classes do not fit 20 labels


# (f) an empty plot is labelled for its metric and its steps ---------------------------------------------------
def test_every_familys_empty_adaptation_plot_is_labelled_for_its_metric_and_steps(qtbot):
    from workbench.core.losses import higher_is_better
    from workbench.core.registry import FAMILIES

    metrics = {FAMILIES.get(name).metric for name in FAMILIES.names()}
    assert {"mse", "return", "accuracy"} <= metrics
    for metric in sorted(metrics):
        for steps in (0, 3):
            curves = shown(qtbot, AdaptationPlot(), 500, 320)
            curves.log.setChecked(not higher_is_better(metric))  # as the training page sets it
            curves.set_metric(metric, steps)
            qtbot.wait(5)
            p = curves.plot.getPlotItem()
            assert p.getAxis("left").labelText == heldout_label(metric) != "held-out loss"
            (x0, x1), _ = p.viewRange()
            assert -0.5 <= x0 <= 0 and steps <= x1 <= max(steps, 0) + 0.5  # 0..steps, not −4…4
            texts = [t for _, t in drawn_ticks(p.getAxis("bottom"))]
            assert texts[0] == "0" and texts[-1] == str(steps) and all(t.isdigit() for t in texts)
            assert_tidy(drawn_ticks(p.getAxis("left")))
    curves.set_metric("return", 9, "episode within the trial")
    assert curves.plot.getPlotItem().getAxis("bottom").labelText == "episode within the trial"


# (g) rollouts use the algorithm's own word for a step ---------------------------------------------------------
def _bandits(names=None, steps=10, tasks=4, arms=5):
    rng = np.random.default_rng(4)
    return BanditArms(family="bandits", steps=list(range(steps)), means=rng.random((tasks, arms)),
                      pull_fraction=rng.dirichlet(np.ones(arms), (tasks, steps)), returns=rng.random((tasks, steps)),
                      step_names=names)


def _pearl_paths(tasks=2, steps=4, horizon=6):
    rng = np.random.default_rng(5)
    return Trajectories2D(family="navigation", steps=list(range(steps)), goals=rng.uniform(-0.5, 0.5, (tasks, 2)),
                          paths=np.cumsum(rng.normal(0, 0.05, (tasks, steps, 3, horizon + 1, 2)), 3),
                          returns=rng.random((tasks, steps)), bounds=[-0.6, 0.6], step_names=PEARL_NAMES)


def _legend_texts(renderer):
    return [label.text for _, label in renderer.legend.items]


def test_pearl_rollouts_name_their_steps_as_episodes_of_context(qtbot):
    view = shown(qtbot, RolloutView(), 700, 500)
    view.show_render(80, _pearl_paths())
    r = view.stack.currentWidget()
    assert _legend_texts(r) == ["no context (prior)", "after 3 episodes of context", "goal"]
    assert "no context (prior)" in view.caption.text() and "after 3 episodes of context" in view.caption.text()
    assert "step" not in view.caption.text() and not any("step" in t for t in _legend_texts(r))
    view.show_render(81, _bandits([f"episode {k + 1} of the trial" for k in range(10)]))  # RL² on bandits
    r = view.stack.currentWidget()
    assert _legend_texts(r) == ["pulls, episode 1 of the trial", "pulls, episode 10 of the trial", "arm mean"]
    assert "episode 10 of the trial" in view.caption.text() and "step" not in view.caption.text()


def test_without_names_the_steps_are_inner_steps(qtbot):
    view = shown(qtbot, RolloutView(), 700, 500)
    view.show_render(5, _bandits(steps=4))
    assert _legend_texts(view.stack.currentWidget())[:2] == ["pulls, before adaptation", "pulls, after 3 steps"]
    visits = StateVisitation(family="tabular", steps=[0, 1, 2, 3], visits=np.full((2, 4, 6), 1 / 6),
                             returns=np.zeros((2, 4)), step_names=PEARL_NAMES)
    view.show_render(6, visits)
    r = view.stack.currentWidget()
    (ticks,) = r.panels[0].getAxis("bottom")._tickLevels  # the columns: named, elided to fit under them
    for (_, text), name in zip(ticks, ("no context (prior)", "after 3 episodes of context")):
        shown_part = text.rstrip("…")
        assert len(shown_part) >= 3 and name.startswith(shown_part)
