"""The rollout view of few-shot classification: support and query images of one held-out task, the labels
predicted before adaptation and after the selected step (green right, red wrong), the task's accuracy, and
the confusion matrix of the shown tasks for that step."""
import numpy as np
import pytest
from PySide6.QtWidgets import QBoxLayout, QComboBox, QSlider

from workbench.core.payloads import ClassifiedImages
from workbench.gui.classification_view import ONE_STEP_NOTE, RIGHT, WRONG, ClassificationRenderer
from workbench.gui.plots import RENDERERS, RolloutView


def make_payload(tasks=2, ways=5, shots=1, queries=15, steps=(0, 1, 2), rgb=False, size=12, seed=0):
    """Random pixels and labels; predictions right about a fifth of the time before adaptation and more
    often after each step; the confusion matrix counted from them as the family does."""
    rng = np.random.default_rng(seed)
    pix = (size, size, 3) if rgb else (size, size)
    support = rng.random((tasks, ways, shots, *pix), dtype=np.float32)
    query = rng.random((tasks, queries, *pix), dtype=np.float32)
    labels = rng.integers(0, ways, (tasks, queries))
    labels[:, :ways] = np.arange(ways)  # every class has a query
    predicted = rng.integers(0, ways, (tasks, len(steps), queries))
    for s in range(1, len(steps)):
        keep = rng.random((tasks, queries)) < 0.4 + 0.25 * s
        predicted[:, s] = np.where(keep, labels, predicted[:, s])
    confusion = np.zeros((len(steps), ways, ways), np.int64)
    for s in range(len(steps)):
        np.add.at(confusion[s], (labels.ravel(), predicted[:, s].ravel()), 1)
    return ClassifiedImages(family="test", steps=list(steps), support=support, query=query, query_labels=labels,
                            predicted=predicted, probability=rng.random(predicted.shape, dtype=np.float32),
                            accuracy=(predicted == labels[:, None]).mean(-1), confusion=confusion,
                            class_names=[[f"class {t}.{c}" for c in range(ways)] for t in range(tasks)])


def shown(qtbot, payload, size=(1000, 700)):
    view = RolloutView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    view.show_render(7, payload)
    return view, view.stack.currentWidget()


def selectors(r):
    return (r.findChild(QComboBox, "classificationTaskSelector"), r.findChild(QSlider, "classificationStepSelector"))


def check_marks(r, payload, t, s):
    """The captions are the predicted labels of task ``t`` before adaptation and after step ``s``, in rows of
    their true class, coloured by whether they are right."""
    labels, pred = payload.query_labels[t], payload.predicted[t]
    two = len(payload.steps) > 1
    marks = r.mosaic.marks
    assert len(marks) == len(r.mosaic.rows) == payload.support.shape[1]
    colours = {RIGHT.name(): 0, WRONG.name(): 0}
    for c, row in enumerate(marks):
        order = np.flatnonzero(labels == c)
        assert len(row) == len(order) == len(r.mosaic.rows[c][3])
        for j, m in zip(order, row):
            expect = [(str(pred[0, j]), pred[0, j] == c), (str(pred[s, j]), pred[s, j] == c)] if two else \
                [(str(pred[0, j]), pred[0, j] == c)]
            assert [(text, colour == RIGHT) for text, colour in m] == expect
            colours[m[-1][1].name()] += 1
    right = int((pred[s] == labels).sum())
    assert colours == {RIGHT.name(): right, WRONG.name(): len(labels) - right}
    np.testing.assert_array_equal(r.confusion.image.image, payload.confusion[s])


def pixel(image, x=0, y=0):
    c = image.pixelColor(x, y)
    return c.red(), c.green(), c.blue()


def test_the_renderer_is_registered_and_shows_the_last_step_of_the_first_task(qtbot):
    assert RENDERERS["classified-images"] is ClassificationRenderer
    payload = make_payload()
    view, r = shown(qtbot, payload)
    assert isinstance(r, ClassificationRenderer) and view.payload is payload
    task, step = selectors(r)
    assert task.count() == 2 and task.currentIndex() == 0 and "1 of 2" in task.currentText()
    assert step.isVisible() and (step.minimum(), step.maximum(), step.value()) == (0, 2, 2)
    check_marks(r, payload, 0, 2)
    before = (payload.predicted[0, 0] == payload.query_labels[0]).mean()
    after = (payload.predicted[0, 2] == payload.query_labels[0]).mean()
    text = r.accuracy.text()
    assert f"{before:.0%} right before adaptation" in text and f"{after:.0%} after 2 steps" in text
    assert "after 2 steps" in r.step_label.text() and "green: right" in view.caption.text()
    assert [row[0] for row in r.mosaic.rows] == ["0", "1", "2", "3", "4"]
    assert r.mosaic.rows[3][1] == "class 0.3"
    assert r.plot_items() == [r.confusion.plot]
    r.grab()  # paints without error


def test_switching_task_and_step_updates_labels_images_and_confusion(qtbot):
    payload = make_payload(shots=3)
    view, r = shown(qtbot, payload)
    task, step = selectors(r)
    step.setValue(1)
    check_marks(r, payload, 0, 1)
    assert "after 1 step" in r.step_label.text() and "after 1 step" in r.mosaic.header[1]
    task.setCurrentIndex(1)
    check_marks(r, payload, 1, 1)
    support = r.mosaic.rows[2][2]
    assert len(support) == 3
    assert pixel(support[1])[0] == round(255 * float(payload.support[1, 2, 1, 0, 0]))
    step.setValue(0)
    check_marks(r, payload, 1, 0)
    assert "p = " in r.mosaic.tips[0][0] and "true label 0 (class 1.0)" in r.mosaic.tips[0][0]
    r.grab()


def test_rgb_images(qtbot):
    payload = make_payload(rgb=True, shots=1)
    view, r = shown(qtbot, payload)
    image = r.mosaic.rows[0][3][0]  # the first query of class 0
    j = int(np.flatnonzero(payload.query_labels[0] == 0)[0])
    expect = tuple(round(255 * float(v)) for v in payload.query[0, j, 0, 0])
    assert pixel(image) == expect
    check_marks(r, payload, 0, 2)
    r.grab()


def test_a_payload_of_another_shape_lays_out_again_and_one_of_the_same_reuses_the_items(qtbot):
    view, r = shown(qtbot, make_payload(ways=5, shots=1))
    mosaic, texts = r.mosaic, list(r.confusion.texts)
    view.show_render(8, make_payload(ways=5, shots=1, seed=3))
    assert r.mosaic is mosaic and r.confusion.texts == texts  # same shape: nothing made again
    other = make_payload(tasks=3, ways=3, shots=3, queries=9, steps=(0, 1, 2, 3, 4), rgb=True)
    view.show_render(9, other)
    task, step = selectors(r)
    assert view.stack.currentWidget() is r and len(view.renderers) == 1
    assert task.count() == 3 and step.maximum() == 4 and step.value() == 4  # it follows the last step
    assert len(r.mosaic.rows) == 3 and all(len(row[2]) == 3 for row in r.mosaic.rows)
    assert len(r.confusion.texts) == 9 and r.confusion.texts[4].toPlainText() == str(other.confusion[4][1, 1])
    check_marks(r, other, 0, 4)
    step.setValue(2)
    view.show_render(10, make_payload(tasks=3, ways=3, shots=3, queries=9, steps=(0, 1, 2, 3, 4), seed=1))
    assert step.value() == 2  # a step the user chose is kept
    many = make_payload(ways=20, queries=60)
    view.show_render(11, many)
    assert len(r.mosaic.rows) == 20 and r.confusion.texts == []  # too many classes to write the counts
    check_marks(r, many, 0, 2)
    r.grab()


def test_no_inner_steps_says_so(qtbot):
    payload = make_payload(steps=(0,))
    view, r = shown(qtbot, payload)
    task, step = selectors(r)
    assert not step.isVisible() and step.value() == 0
    assert ONE_STEP_NOTE in r.accuracy.text() and "before" not in r.accuracy.text()
    assert "before" not in view.caption.text()
    assert "no inner steps" in r.confusion.plot.titleLabel.text
    check_marks(r, payload, 0, 0)
    task.setCurrentIndex(1)
    check_marks(r, payload, 1, 0)
    r.grab()


@pytest.fixture(scope="module")
def glyphs_payload():
    import torch

    from workbench.tasks.glyphs import Glyphs, GlyphsConfig

    fam = Glyphs(GlyphsConfig(background_classes=20, evaluation_classes=20))
    batch = fam.evaluation_batch(2, 0)
    preds = torch.randn(2, 3, batch.xq.shape[1], 5, generator=torch.Generator().manual_seed(0))
    preds[:, 2] += 3 * torch.nn.functional.one_hot(batch.yq, 5)  # mostly right after the last step
    return fam.render(batch, preds, batch.xq, [0, 1, 2])


def test_the_glyphs_family_payload_shows_with_readable_images(qtbot, glyphs_payload):
    view, r = shown(qtbot, glyphs_payload, size=(1400, 900))
    qtbot.waitExposed(view)
    assert isinstance(r, ClassificationRenderer)
    check_marks(r, glyphs_payload, 0, 2)
    assert r.body.direction() == QBoxLayout.Direction.LeftToRight  # the confusion matrix beside the images
    qtbot.waitUntil(lambda: r.mosaic.cell >= 40, timeout=2000)
    assert r.mosaic.minimumHeight() == 0  # everything fits: no scrolling
    r.grab()


def test_a_narrow_tall_area_puts_the_confusion_matrix_under_the_images_and_a_short_one_beside(qtbot, glyphs_payload):
    view, r = shown(qtbot, glyphs_payload, size=(600, 700))
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: r.body.direction() == QBoxLayout.Direction.TopToBottom, timeout=2000)
    assert r.mosaic.cell >= r.mosaic.MIN_CELL
    assert "<br>" not in r.confusion.plot.titleLabel.text
    r.grab()
    view.resize(715, 460)  # the Rollouts dock of a 1400 x 900 main window
    qtbot.waitUntil(lambda: r.body.direction() == QBoxLayout.Direction.LeftToRight, timeout=2000)
    assert 190 <= r.confusion.width() <= 300 and "<br>" in r.confusion.plot.titleLabel.text
    qtbot.waitUntil(lambda: r.mosaic.minimumHeight() > 0, timeout=2000)  # it scrolls rather than shrink below MIN_CELL
    assert r.mosaic.cell == r.mosaic.MIN_CELL
    r.grab()


def test_accuracy_is_shown_in_percent_and_the_meta_loss_plot_marks_the_held_out_error(qtbot):
    from workbench.core.events import Evaluation
    from workbench.gui.plots import AdaptationPlot, MetaLossPlot

    per_task = np.array([[0.2, 0.8], [0.4, 1.0]])
    e = Evaluation(7, "accuracy", [0, 1], per_task, per_task.mean(0), np.array([0.1, 0.1]))
    curves = AdaptationPlot()
    qtbot.addWidget(curves)
    curves.log.setChecked(False)  # as the main window sets it for a metric where higher is better
    curves.add_evaluation(e)
    assert curves.plot.getPlotItem().getAxis("left").labelText == "held-out accuracy (%)"
    assert np.allclose(curves.mean.getData()[1], [30.0, 90.0])
    meta = MetaLossPlot()
    qtbot.addWidget(meta)
    meta.set_heldout("accuracy")
    meta.add_evaluation(7, 0.3, 0.9)
    assert np.allclose([meta.eb.data[-1], meta.ea.data[-1]], [0.7, 0.1])  # 1 − accuracy, beside the loss
    legend = meta.plot.getPlotItem().legend
    assert legend.getLabel(meta.after).text == "held-out error (1 − accuracy), after adaptation"
    meta.set_heldout("mse")
    meta.add_evaluation(8, 0.3, 0.9)
    assert meta.ea.data[-1] == 0.9 and legend.getLabel(meta.after).text == "held-out, after adaptation"
