"""The classification playground page, offscreen, driven by simulated mouse drags on the drawing canvases and
clicks on the buttons, on tiny trained glyph bundles (ProtoNets, MAML, and the pretrained baseline)."""
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import QPushButton, QSlider, QWidget

from conftest import PRESETS
from workbench.services.bundle import load_bundle

PAGE_SIZE = (1100, 700)
WINDOW_PAGES = [(1390, 830), (1015, 700)]  # the Playground tab's page in a 1400×900 and a 1024×768 window
DONE_MS = 20_000
# a character per class, and the query: strokes in [0, 1]² canvas coordinates
SHAPES = [[[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]],  # x
          [[(0.5, 0.15), (0.5, 0.85)]],  # |
          [[(0.15, 0.5), (0.85, 0.5)]],  # -
          [[(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.3)]],  # a square
          [[(0.2, 0.8), (0.5, 0.2), (0.8, 0.8)]]]  # ^


@pytest.fixture(scope="module")
def models(glyph_bundles):
    return {name: load_bundle(path) for name, path in glyph_bundles.items()}


@pytest.fixture
def page(qtbot, models):
    from workbench.gui.playground_classification import ClassificationPlayground

    w = ClassificationPlayground()
    qtbot.addWidget(w)
    w.resize(*PAGE_SIZE)
    w.set_models(models["protonet"], models["pretrained"])
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.cancel()


def at(canvas, x, y) -> QPoint:
    """Canvas coordinates (x, y) in [0, 1]² as the widget's pixels."""
    return QPoint(round(x * (canvas.width() - 1)), round(y * (canvas.height() - 1)))


def drag(qtbot, canvas, strokes) -> None:
    """Draw ``strokes`` with the mouse: press, move through the points (and between them), release."""
    for stroke in strokes:
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=at(canvas, *stroke[0]))
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
            for t in np.linspace(0, 1, 6)[1:]:
                qtbot.mouseMove(canvas, at(canvas, x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=at(canvas, *stroke[-1]))


def click(qtbot, button):
    assert button.isEnabled(), button.objectName()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wait_done(qtbot, page):
    qtbot.waitUntil(lambda: not page.busy() and bool(page.results), timeout=DONE_MS)


def assert_bars(chart, n=5):
    """N probabilities summing to 1, the largest highlighted, the others not."""
    from workbench.gui.playground_classification import BAR, PREDICTED

    p = chart.values
    assert p.shape == (n,) and p.sum() == pytest.approx(1.0) and (p >= 0).all()
    assert chart.predicted == int(np.argmax(p))
    widths = np.asarray(chart.bars.opts["width"], dtype=np.float64)
    np.testing.assert_allclose(widths, p)
    for i in range(n):
        assert chart.brush_color(i) == (PREDICTED if i == chart.predicted else BAR), i
    assert f"class {chart.predicted + 1}" in chart.title.text()


def test_mouse_drags_draw_strokes_that_the_canvas_rasterises(qtbot, page):
    canvas = page.rows[0].canvases[0]
    assert canvas.objectName() == "drawingCanvas" and not canvas.has_ink() and canvas.image() is None
    drag(qtbot, canvas, [[(0.2, 0.5), (0.8, 0.5)]])
    assert len(canvas.strokes) == 1 and len(canvas.strokes[0]) > 3 and canvas.has_ink()
    image = canvas.image()
    assert image.shape == (1, 28, 28) and 0 <= image.min() and image.max() <= 1
    assert image[0, 13:15, 8:20].min() > 0.5 and image[0, :8].max() == 0 and image[0, 20:].max() == 0
    drag(qtbot, canvas, [[(0.5, 0.2), (0.5, 0.8)]])
    assert len(canvas.strokes) == 2 and canvas.image()[0, 6:10, 13:15].min() > 0.5
    qtbot.mouseClick(canvas, Qt.MouseButton.RightButton, pos=at(canvas, 0.5, 0.5))  # undo the last stroke
    assert len(canvas.strokes) == 1 and canvas.image()[0, 6:10, 13:15].max() == 0
    clear = canvas.findChild(QWidget, "clearCanvasButton")
    assert clear.isVisible()
    qtbot.mouseClick(clear, Qt.MouseButton.LeftButton)
    assert not canvas.has_ink() and canvas.strokes == []
    # '+' adds a canvas to the row
    click(qtbot, page.rows[2].findChild(QWidget, "addDrawingButton"))
    assert len(page.rows[2].canvases) == 2 and page.rows[2].canvases[1].objectName() == "drawingCanvas"


def test_draw_every_class_and_a_query_then_classify(qtbot, page):
    assert len(page.rows) == 5 and all(len(r.canvases) == 1 for r in page.rows)  # N = ways, K = shots
    query = page.findChild(QWidget, "queryCanvas")
    assert query is page.query
    classify = page.findChild(QPushButton, "classifyButton")
    # nothing drawn yet: what is missing is said, nothing runs
    with qtbot.waitSignal(page.message) as said:
        click(qtbot, classify)
    assert said.args[1] is True and "have no drawing" in said.args[0] and not page.busy()
    for row, shape in zip(page.rows, SHAPES):
        drag(qtbot, row.canvases[0], shape)
    with qtbot.waitSignal(page.message) as said:
        click(qtbot, classify)
    assert "the query is blank" in said.args[0] and not page.busy()
    drag(qtbot, query, SHAPES[3])  # the square again
    assert query.has_ink()
    click(qtbot, classify)
    wait_done(qtbot, page)
    slider = page.findChild(QSlider, "classificationStepSlider")
    assert slider.maximum() == len(page.results) - 1 == 3  # the baseline's 3 fine-tuning steps
    assert slider.value() == slider.maximum()
    assert_bars(page.model_chart)
    assert_bars(page.baseline_chart)
    assert page.model_chart.predicted == page.results[-1].predicted
    # the ProtoNets prediction is one point; the baseline's head starts at zero: uniform before its steps
    slider.setValue(0)
    np.testing.assert_allclose(page.baseline_chart.values, 0.2)
    np.testing.assert_allclose(page.model_chart.values, page.results[-1].probabilities)
    assert "prototypes" in page.model_chart.title.text()
    assert page.classify_button.isEnabled() and not page.cancel_button.isEnabled()


def test_sample_a_new_task_fills_the_canvases_and_drawing_over_one_replaces_it(qtbot, page, models):
    click(qtbot, page.findChild(QPushButton, "sampleTaskButton"))
    assert all(len(r.canvases) == 1 and r.canvases[0].has_ink() and r.canvases[0].sampled for r in page.rows)
    assert page.query.has_ink() and page.query_label is not None
    label = page.query_label
    assert page.model_chart.truth == label  # the true class is marked
    sampled = page.rows[1].canvases[0].image()
    click(qtbot, page.classify_button)
    wait_done(qtbot, page)
    assert_bars(page.model_chart)
    # a copy of a support drawing as the query is classified as that class by ProtoNets
    page.query.set_image(page.rows[label].canvases[0].image())
    click(qtbot, page.classify_button)
    wait_done(qtbot, page)
    assert page.model_chart.predicted == label
    # drawing over a sampled image replaces it with the drawing
    canvas = page.rows[1].canvases[0]
    drag(qtbot, canvas, SHAPES[2])
    assert not canvas.sampled and len(canvas.strokes) == 1
    assert not np.array_equal(canvas.image(), sampled)
    np.testing.assert_allclose(canvas.image(), page.session.rasterize(canvas.strokes))
    # clear all
    click(qtbot, page.findChild(QPushButton, "clearAllButton"))
    assert not any(c.has_ink() for r in page.rows for c in r.canvases) and not page.query.has_ink()
    assert page.results == []


def test_maml_steps_beside_the_baseline_and_cancel(qtbot, page, models):
    page.set_models(models["maml"], models["pretrained"])
    page.sample_task()
    click(qtbot, page.classify_button)
    wait_done(qtbot, page)
    assert [r.model_step for r in page.results] == [0, 1, 1, 1]
    page.slider.setValue(1)
    assert "1 step" in page.model_chart.title.text() and "1 step" in page.baseline_chart.title.text()
    assert_bars(page.model_chart)
    # a baseline of another family is not used, and the page says why
    nav = load_bundle(PRESETS.parent / "tests" / "data" / "navigation-pretrained.safetensors")
    with qtbot.waitSignal(page.message) as said:
        page.set_models(models["maml"], nav)
    assert said.args[1] is True and "baseline not used" in said.args[0] and page.session.baseline is None
    assert all(r.canvases[0].has_ink() for r in page.rows)  # the same classes: the drawings stay
    page.classify()
    page.cancel()
    assert not page.busy() and page.classify_button.isEnabled()


def test_the_playground_tab_shows_this_page_for_a_glyph_bundle_whole_at_both_window_sizes(qtbot, glyph_bundles):
    from workbench.gui.playground import PlaygroundTab

    runs = glyph_bundles["protonet"].parent.parent  # the runs folder of the three runs
    tab = PlaygroundTab(runs)
    qtbot.addWidget(tab)
    tab.resize(*WINDOW_PAGES[0])
    tab.show()
    qtbot.waitExposed(tab)
    assert tab.set_model(glyph_bundles["protonet"])
    page = tab.page()
    assert page.objectName() == "classificationPlayground"
    assert tab.baseline is not None and tab.baseline.algorithm == "pretrained"  # found in the runs folder
    assert page.session.baseline is tab.baseline and "beside the pretrained baseline" in tab.message_text()
    click(qtbot, page.sample_button)
    click(qtbot, page.classify_button)
    wait_done(qtbot, page)
    assert_bars(page.model_chart)
    assert "protonet: class" in tab.message_text()
    for size in WINDOW_PAGES:  # the tab as a full page of a 1400×900 and of a 1024×768 window: nothing cut
        tab.resize(*size)
        qtbot.waitUntil(lambda: tab.size().width() == size[0])
        qtbot.wait(20)
        canvases = [c for r in page.rows for c in r.canvases] + [page.query]
        shown = canvases + [page.classify_button, page.sample_button, page.cancel_button, page.model_chart,
                            page.baseline_chart, page.slider]
        for w in shown:
            at = QRect(w.mapTo(tab, QPoint(0, 0)), w.size())
            assert tab.rect().contains(at), (size, w.objectName(), at)
            seen = w.viewport() if hasattr(w, "viewport") else w  # a plot's view is drawn on its viewport
            assert seen.visibleRegion().boundingRect().size() == seen.size(), (size, w.objectName())
        assert min(c.width() for c in canvases) >= 52 and page.query.width() >= 96  # big enough to draw in
        scroll = page.support_panel.scroll  # the rows fit the support panel: it does not scroll
        assert not scroll.verticalScrollBar().isVisible() and not scroll.horizontalScrollBar().isVisible()
        for chart in (page.model_chart, page.baseline_chart):
            assert chart.height() >= 150 and chart.title.heightForWidth(chart.title.width()) <= chart.title.height()
    assert tab.set_model(glyph_bundles["maml"]) and tab.page() is page
    tab.cancel()
