"""The sinusoid playground page, offscreen, driven by simulated mouse clicks on the plot and the buttons,
on real (tiny) MAML and pretrained bundles."""
import types

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, QRect, QRectF, Qt

from test_playground_regression import trained_sinusoid
from workbench.services.bundle import load_bundle

PAGE_SIZE = (1300, 800)
DONE_MS = 15_000
WINDOW_PAGES = [(1390, 830), (1015, 700)]  # the Playground tab's page in a 1400×900 and a 1024×768 window


@pytest.fixture(scope="module")
def bundle_paths(tmp_path_factory):
    """The maml and pretrained sinusoid bundles the service tests train (once per session)."""
    return trained_sinusoid("maml", tmp_path_factory), trained_sinusoid("pretrained", tmp_path_factory)


@pytest.fixture(scope="module")
def bundles(bundle_paths):
    return tuple(load_bundle(p) for p in bundle_paths)


@pytest.fixture
def page(qtbot, bundles):
    from workbench.gui.playground_regression import RegressionPlayground

    w = RegressionPlayground()
    qtbot.addWidget(w)
    w.resize(*PAGE_SIZE)
    w.set_models(*bundles)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.cancel()


def to_widget(page, x, y) -> QPoint:
    """Where data point (x, y) of the main plot is, in its viewport's pixels."""
    vb = page.plot.getPlotItem().vb
    return page.plot.mapFromScene(vb.mapViewToScene(pg.Point(x, y)))


def click_plot(qtbot, page, x, y, button=Qt.MouseButton.LeftButton):
    qtbot.mouseClick(page.plot.viewport(), button, pos=to_widget(page, x, y))


def click(qtbot, button):
    assert button.isEnabled(), button.objectName()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wait_done(qtbot, page):
    qtbot.waitUntil(lambda: not page.busy(), timeout=DONE_MS)


def curve(item):
    """An item's data as given to setData (not log-transformed by the loss chart's log axis)."""
    x, y = item.getOriginalDataset() if hasattr(item, "getOriginalDataset") else item.getData()
    return (np.array([]), np.array([])) if x is None else (np.asarray(x), np.asarray(y))


def test_clicked_points_then_adapt_lowers_the_support_loss_at_every_step(qtbot, page):
    assert page.objectName() == "sinusoidPlayground"
    assert page.shots.value() == 10 and page.steps_spin.value() == 10  # the family's K; 10 >= trained steps
    xs = np.array([-4.0, -2.0, 0.0, 1.5, 3.5])
    ys = 2.0 * np.sin(xs - 0.5)
    for x, y in zip(xs, ys):
        click_plot(qtbot, page, x, y)
    assert len(page.points_x) == 5
    np.testing.assert_allclose(page.points_x, xs, atol=0.06)  # a pixel is ~0.025 in x, ~0.04 in y here
    np.testing.assert_allclose(page.points_y, ys, atol=0.08)
    px, py = curve(page.panel.support)
    np.testing.assert_array_equal(px, page.points_x)
    assert page.true is None and "placed by hand" in page.points_label.text()
    assert len(curve(page.panel.truth)[0]) == 0  # unknown true function: no dashed line
    assert len(curve(page.panel.latest)[0]) == 0

    click(qtbot, page.adapt_button)
    assert page.busy() and page.cancel_button.isEnabled() and not page.adapt_button.isEnabled()
    seen = set()  # the steps appear one after another, not all at once
    while page.busy():
        seen.add(len(page.results))
        qtbot.wait(5)
    assert len(seen) >= 4, seen
    res = page.results
    assert [r.step for r in res] == list(range(11))
    support = [r.support_loss for r in res]
    assert all(b < a for a, b in zip(support, support[1:])), support
    # the prediction was redrawn: before (red), the newest (bold), and the steps in between
    np.testing.assert_array_equal(curve(page.panel.before)[1], res[0].prediction)
    np.testing.assert_array_equal(curve(page.panel.latest)[1], res[-1].prediction)
    assert not np.array_equal(res[0].prediction, res[-1].prediction)
    middle = [curve(item)[1] for item in page.panel.steps]
    assert len(middle) == 9 and all(np.array_equal(m, r.prediction) for m, r in zip(middle, res[1:-1]))
    assert "after 10 steps (newest)" in page.legend.text()
    # the baseline: same points, its own curves
    np.testing.assert_array_equal(curve(page.base_panel.latest)[1], res[-1].baseline_prediction)
    np.testing.assert_array_equal(curve(page.base_panel.support)[0], page.points_x)
    assert not page.base_panel.note.isVisible()
    assert "pretrained (baseline)" in page.base_panel.caption.text()
    assert "step 10: support MSE" in page.panel.caption.text() and page.panel.caption.fits()
    # loss chart: support losses of model and baseline; no query loss without a true function
    steps, model_loss = curve(page.loss_items["support_loss"])
    np.testing.assert_array_equal(steps, np.arange(11))
    np.testing.assert_allclose(model_loss, support)
    assert len(curve(page.loss_items["baseline_support_loss"])[0]) == 11
    assert len(curve(page.loss_items["query_loss"])[0]) == 0
    assert page.loss.listed == ["support_loss", "baseline_support_loss"]  # its legend lists what it shows
    assert "support (baseline)" in page.loss.legend.text() and "query" not in page.loss.legend.text()
    assert "support MSE" in page.message_label.text() and "pretrained" in page.message_label.text()
    assert page.adapt_button.isEnabled() and not page.cancel_button.isEnabled()


def test_sliders_sample_k_points_of_a_known_function_and_show_the_query_loss(qtbot, page):
    page.shots.setValue(6)
    page.amp.setValue(150)
    page.phase.setValue(40)
    click(qtbot, page.sample_button)
    s = page.session
    amp, phase = page.true
    assert len(page.points_x) == 6
    assert amp == pytest.approx(0.1 + 4.9 * 150 / 200) and phase == pytest.approx(np.pi * 40 / 200)
    np.testing.assert_allclose(page.points_y, amp * np.sin(np.array(page.points_x) - phase), atol=1e-9)
    gx, gy = curve(page.panel.truth)
    np.testing.assert_allclose(gy, s.true_curve(amp, phase)[1])
    assert len(curve(page.base_panel.truth)[0]) == len(gx)
    assert "sampled" in page.points_label.text()
    before = list(page.points_x)
    page.amp.setValue(60)  # moving a slider resamples the same inputs: the points slide along
    assert page.points_x == before and page.true[0] == pytest.approx(0.1 + 4.9 * 60 / 200)
    click(qtbot, page.adapt_button)
    wait_done(qtbot, page)
    assert all(r.query_loss is not None and r.baseline_query_loss is not None for r in page.results)
    assert len(curve(page.loss_items["query_loss"])[0]) == 11
    assert len(curve(page.loss_items["baseline_query_loss"])[0]) == 11
    assert "query MSE" in page.message_label.text()
    # a point placed by hand: the true function is no longer known, the adaptation is stale
    click_plot(qtbot, page, 0.3, 1.0)
    assert page.true is None and len(page.points_x) == 7 and page.results == []
    assert len(curve(page.panel.truth)[0]) == 0 and len(curve(page.panel.latest)[0]) == 0


def test_bad_input_is_a_message_and_starts_nothing(qtbot, page):
    messages = []
    page.message.connect(lambda text, error: messages.append((text, error)))
    click(qtbot, page.adapt_button)  # no points
    assert not page.busy() and page.results == []
    assert "at least 1 support point" in page.message_label.text()
    assert messages[-1] == (page.message_label.text(), True)
    click(qtbot, page.step_button)
    assert not page.busy() and "at least 1 support point" in page.message_label.text()
    # a click right of the family's range (inside the plot's margin) places nothing
    assert page.plot.getPlotItem().vb.viewRange()[0][1] > 5.15
    click_plot(qtbot, page, 5.15, 1.0)
    assert page.points_x == []
    assert "outside the family's input range [-5, 5]" in page.message_label.text() and messages[-1][1]
    # points set from outside that do not fit: refused at Adapt, with the reason
    page.set_points([0.0, 7.5], [1.0, 1.0])
    click(qtbot, page.adapt_button)
    assert not page.busy() and page.results == []
    assert "x = 7.5 is outside" in page.message_label.text()
    page.set_points([0.0, np.nan], [1.0, 1.0])
    click(qtbot, page.adapt_button)
    assert "non-finite" in page.message_label.text() and not page.busy()
    assert page.isVisible()


def test_cancel_ends_a_long_adaptation_and_step_goes_on_from_there(qtbot, page):
    click(qtbot, page.sample_button)
    page.steps_spin.setValue(100)
    click(qtbot, page.adapt_button)
    qtbot.waitUntil(lambda: len(page.results) >= 3, timeout=DONE_MS)
    assert page.busy() and not page.sample_button.isEnabled() and not page.amp.isEnabled()
    click(qtbot, page.cancel_button)
    assert not page.busy()
    shown = page.results[-1].step
    assert 2 <= shown < 100
    for w in (page.adapt_button, page.step_button, page.sample_button, page.shots, page.amp, page.reset_button):
        assert w.isEnabled(), w.objectName()
    assert not page.cancel_button.isEnabled()
    assert "cancelled" in page.message_label.text()
    qtbot.wait(100)
    assert page.results[-1].step == shown  # nothing arrives after a cancel
    click(qtbot, page.step_button)  # one more step from the state shown
    wait_done(qtbot, page)
    assert [r.step for r in page.results] == list(range(shown + 2))
    want = list(page.session.steps(page.points_x, page.points_y, shown + 1, true=page.true))[-1]
    np.testing.assert_allclose(page.results[-1].prediction, want.prediction, rtol=1e-5, atol=1e-5)  # other thread
    click(qtbot, page.reset_button)
    assert page.results == [] and len(page.points_x) == 10


def test_step_by_step_and_removing_points(qtbot, page):
    for x in (-3.0, -1.0, 1.0, 3.0):
        click_plot(qtbot, page, x, np.cos(x))
    click(qtbot, page.step_button)
    wait_done(qtbot, page)
    assert [r.step for r in page.results] == [0, 1]
    click(qtbot, page.step_button)
    wait_done(qtbot, page)
    assert [r.step for r in page.results] == [0, 1, 2]
    assert page.results[2].support_loss < page.results[1].support_loss
    np.testing.assert_array_equal(curve(page.panel.latest)[1], page.results[2].prediction)
    # right-click on a point removes it; elsewhere it removes nothing
    click_plot(qtbot, page, -1.0, np.cos(-1.0), Qt.MouseButton.RightButton)
    np.testing.assert_allclose(page.points_x, [-3.0, 1.0, 3.0], atol=0.06)
    assert page.results == []
    click_plot(qtbot, page, 0.0, -5.0, Qt.MouseButton.RightButton)
    assert len(page.points_x) == 3
    click(qtbot, page.clear_button)
    assert page.points_x == [] and len(curve(page.panel.support)[0]) == 0


def test_without_a_baseline_and_with_a_model_it_cannot_take(qtbot, page, bundles):
    page.set_models(bundles[0])
    assert page.base_panel.note.isVisible() and "no pretrained baseline" in page.base_panel.note.toPlainText()
    click(qtbot, page.sample_button)
    click(qtbot, page.adapt_button)
    wait_done(qtbot, page)
    assert len(page.results) == 11 and page.results[-1].baseline_prediction is None
    assert len(curve(page.loss_items["baseline_support_loss"])[0]) == 0
    assert len(curve(page.base_panel.latest)[0]) == 0
    assert page.supports(bundles[0]) and not page.supports(None)
    rl = types.SimpleNamespace(meta={"family": "navigation", "algorithm": "maml-trpo"})
    assert not page.supports(rl)
    errors = []
    page.message.connect(lambda text, error: errors.append(error))
    page.set_models(rl)
    assert errors == [True] and "trajectories" in page.message_label.text()
    assert not page.adapt_button.isEnabled() and not page.sample_button.isEnabled()
    n = len(page.points_x)
    click_plot(qtbot, page, 0.0, 0.0)  # no model to place points for: a message, no crash
    assert len(page.points_x) == n and "no model" in page.message_label.text()
    page.set_models(*bundles)  # back in business, the baseline too
    assert page.adapt_button.isEnabled() and not page.base_panel.note.isVisible()


def in_tab(tab, widget, rect=None) -> QRect:
    """``widget``'s rectangle (or ``rect``, a scene rectangle of the plot ``widget``) in ``tab``'s pixels."""
    if rect is None:
        return QRect(widget.mapTo(tab, QPoint(0, 0)), widget.size())
    r = widget.mapFromScene(QRectF(rect)).boundingRect()
    return QRect(widget.viewport().mapTo(tab, r.topLeft()), r.size())


@pytest.mark.parametrize("size", WINDOW_PAGES)
def test_on_a_full_page_the_task_is_all_in_view_and_the_buttons_stay_put(qtbot, bundle_paths, size):
    from workbench.gui.playground import PlaygroundTab

    maml, pre = bundle_paths
    tab = PlaygroundTab(maml.parent.parent)
    qtbot.addWidget(tab)
    tab.resize(*size)
    tab.show()
    qtbot.waitExposed(tab)
    assert tab.set_model(maml) and tab.set_baseline(pre)
    page = tab.page()
    qtbot.wait(20)
    adapt_at = page.adapt_button.mapTo(tab, QPoint(0, 0))
    click(qtbot, page.sample_button)
    qtbot.wait(20)  # the new texts laid out
    assert page.adapt_button.mapTo(tab, QPoint(0, 0)) == adapt_at  # the next click lands where it was
    click(qtbot, page.adapt_button)
    wait_done(qtbot, page)
    qtbot.wait(20)
    assert page.adapt_button.mapTo(tab, QPoint(0, 0)) == adapt_at
    assert page.column.verticalScrollBar().maximum() == 0  # the controls fit: nothing scrolls
    for b in (page.adapt_button, page.step_button, page.cancel_button, page.reset_button, page.sample_button):
        assert tab.rect().contains(in_tab(tab, b)), b.objectName()
        assert b.visibleRegion().boundingRect().size() == b.size(), b.objectName()  # not half hidden
    lo, hi = page.session.x_range
    for panel in (page.panel, page.base_panel):
        (x0, x1), _ = panel.viewbox.viewRange()
        assert x0 <= lo and x1 >= hi  # the task's whole input range [-5, 5]
        view = in_tab(tab, panel.widget, panel.viewbox.sceneBoundingRect())
        shown = in_tab(tab, panel.widget.viewport()).adjusted(-1, -1, 1, 1)
        assert shown.contains(view) and tab.rect().contains(view), (view, shown)  # not drawn past the widget
        xs, ys = panel.to_scene(page.points_x, page.points_y)
        for x, y in zip(xs, ys):
            p = panel.widget.viewport().mapTo(tab, panel.widget.mapFromScene(x, y))
            assert view.contains(p), (x, y)
        assert panel.caption.fits(), panel.caption.text()  # the captions are whole
        assert not in_tab(tab, page.legend).intersects(in_tab(tab, panel.widget))  # the legend is off the data
    for legend in (page.legend, page.loss.legend):
        assert legend.heightForWidth(legend.width()) <= 1.5 * legend.fontMetrics().lineSpacing()  # one line
