"""The classification playground's core (no Qt): drawings rasterised like the glyphs family's characters,
step-by-step class probabilities of a model and its baseline on tiny trained glyph bundles, sampled held-out
tasks, input checks, cancelling."""
import threading

import numpy as np
import pytest

from workbench.services.bundle import load_bundle
from workbench.services.playground_classification import (PEN, PEN_RANGE, ClassificationSession, ClassStep,
                                                          PlaygroundError, rasterize)

@pytest.fixture(scope="module")
def glyph_models(glyph_bundles):
    """The tiny trained glyph bundles of conftest.py, loaded: ProtoNets, MAML (1 step), pretrained (3 steps)."""
    return {name: load_bundle(path) for name, path in glyph_bundles.items()}


def test_a_straight_stroke_is_inked_along_it_like_a_glyph_and_nothing_far_away():
    img = rasterize([[(0.2, 0.5), (0.8, 0.5)]], 28)
    assert img.shape == (1, 28, 28) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    rows = img[0, 13:15, 6:22]  # the two pixel rows the line y = 0.5 runs between, along its length
    assert (rows > 0.8).all()
    assert img[0, :10].max() == 0.0 and img[0, 18:].max() == 0.0  # far above and below
    assert img[0, :, :4].max() == 0.0 and img[0, :, 25:].max() == 0.0  # beyond its ends
    # the pen of the glyphs family: half-width in its range, one pixel of anti-aliased edge (a column across
    # the stroke holds 2 × half-width × size of ink)
    assert PEN_RANGE[0] <= PEN <= PEN_RANGE[1]
    assert img[0, :, 14].sum() == pytest.approx(2 * PEN * 28, abs=0.05)
    thick = rasterize([[(0.2, 0.5), (0.8, 0.5)]], 28, pen=PEN_RANGE[1])
    assert thick[0, :, 14].sum() > img[0, :, 14].sum()
    # a diagonal is inked where it passes, a click is a dot, several strokes add up
    diag = rasterize([[(0.1, 0.1), (0.9, 0.9)]], 28)
    assert all(diag[0, i, i] > 0.8 for i in range(4, 24)) and diag[0, 2, 25] == 0.0
    dot = rasterize([[(0.5, 0.5)]], 28)
    assert 0 < (dot > 0).sum() <= 16
    both = rasterize([[(0.2, 0.5), (0.8, 0.5)], [(0.5, 0.2), (0.5, 0.8)]], 28)
    assert both[0, 6:22, 13:15].min() > 0.8 and both[0, 13:15, 6:22].min() > 0.8
    assert rasterize([], 28).max() == 0.0
    assert rasterize([[(0.2, 0.5), (0.8, 0.5)]], 28, channels=3).shape == (3, 28, 28)


def test_bad_strokes_are_refused_with_a_message():
    with pytest.raises(PlaygroundError, match="non-finite"):
        rasterize([[(0.2, float("nan")), (0.8, 0.5)]], 28)
    with pytest.raises(PlaygroundError, match="stroke 2"):
        rasterize([[(0.2, 0.5)], ["not", "points", "x"]], 28)
    with pytest.raises(PlaygroundError, match="pen"):
        rasterize([[(0.2, 0.5)]], 28, pen=-1)


def test_probabilities_per_step_for_maml_beside_its_baseline(glyph_models):
    maml, pre = glyph_models["maml"], glyph_models["pretrained"]
    assert maml.rule.steps == 1 and pre.rule.steps == 3
    alone = ClassificationSession(maml)
    task = alone.sample_task(3)
    results = list(alone.steps(task.images, task.labels, task.query))
    assert [r.step for r in results] == [0, 1]  # the trained steps + 1
    assert all(isinstance(r, ClassStep) and r.baseline_probabilities is None for r in results)
    for r in results:
        assert r.probabilities.shape == (5,) and r.probabilities.dtype == np.float64
        assert r.probabilities.sum() == pytest.approx(1.0) and (r.probabilities >= 0).all()
    assert not np.allclose(results[0].probabilities, results[1].probabilities)  # the step changed something
    both = list(ClassificationSession(maml, pre).steps(task.images, task.labels, task.query))
    assert [r.step for r in both] == [0, 1, 2, 3]  # the longer of the two
    assert [r.model_step for r in both] == [0, 1, 1, 1] and [r.baseline_step for r in both] == [0, 1, 2, 3]
    for r, a in zip(both, results + [results[-1]] * 2):
        np.testing.assert_allclose(r.probabilities, a.probabilities, rtol=1e-6)
        assert r.baseline_probabilities.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(both[0].baseline_probabilities, 0.2)  # its new head starts at zero
    assert both[-1].baseline_predicted == int(np.argmax(both[-1].baseline_probabilities))
    # the bundle's own adapt() with its trained rule, predicting on the support drawings and the query in one
    # batch (batch norm normalises with the batch's statistics: the playground classifies the query so)
    logits = maml.adapt(task.images, task.labels).predict(np.concatenate([task.images, task.query[None]]))[-1]
    e = np.exp(logits - logits.max())
    np.testing.assert_allclose(results[1].probabilities, e / e.sum(), rtol=1e-4, atol=1e-6)
    assert len(list(alone.steps(task.images, task.labels, task.query, n_steps=4))) == 5  # more steps on demand


def test_protonets_give_one_point_and_classify_a_copy_of_a_support_drawing_as_its_class(glyph_models):
    proto, pre = glyph_models["protonet"], glyph_models["pretrained"]
    session = ClassificationSession(proto)
    for seed in range(4):
        task = session.sample_task(seed)
        results = list(session.steps(task.images, task.labels, task.query))
        assert len(results) == 1 and results[0].step == 0
        assert results[0].probabilities.sum() == pytest.approx(1.0)
        # a query that is one of the support drawings is at distance 0 from its class's prototype
        for c in range(5):
            (r,) = session.steps(task.images, task.labels, task.images[c])
            assert r.predicted == c, (seed, c, r.probabilities)
    both = list(ClassificationSession(proto, pre).steps(task.images, task.labels, task.query))
    assert len(both) == 4 and all(r.model_step == 0 for r in both)
    assert all(np.array_equal(r.probabilities, both[0].probabilities) for r in both)
    assert len(list(session.steps(task.images, task.labels, task.query, n_steps=5))) == 1  # no steps, ever


def test_a_sampled_task_is_a_held_out_n_way_k_shot_task(glyph_models):
    session = ClassificationSession(glyph_models["protonet"])
    task = session.sample_task(7)
    assert task.images.shape == (5, 1, 28, 28) and task.images.dtype == np.float32
    assert task.labels.tolist() == [0, 1, 2, 3, 4] and task.query.shape == (1, 28, 28)
    assert 0 <= task.query_label < 5 and len(task.class_names) == 5
    assert 0.0 <= task.images.min() and task.images.max() <= 1.0 and (task.images.reshape(5, -1).max(1) > 0.5).all()
    again = session.sample_task(7)
    assert np.array_equal(again.images, task.images) and again.query_label == task.query_label
    assert not np.array_equal(session.sample_task(8).images, task.images)
    # a drawing made by rasterize() is an image of the family's shape: a support set of drawings classifies
    strokes = [[[(0.2, 0.2), (0.8, 0.8)]], [[(0.5, 0.1), (0.5, 0.9)]], [[(0.1, 0.5), (0.9, 0.5)]],
               [[(0.2, 0.8), (0.8, 0.2)]], [[(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.3)]]]
    images = [session.rasterize(s) for s in strokes]
    (r,) = session.steps(images, [0, 1, 2, 3, 4], session.rasterize(strokes[4][0:1]))
    assert r.probabilities.shape == (5,) and r.predicted == 4


def test_bad_support_sets_and_queries_are_refused_with_what_is_wrong(glyph_models):
    session = ClassificationSession(glyph_models["maml"])
    task = session.sample_task(0)
    x, y, q = task.images, task.labels, task.query
    cases = [
        ((x[[0, 1, 3, 4]], [0, 1, 3, 4], q), "class 3 has no drawing"),
        ((x[[0, 1]], [0, 1], q), "class 3, class 4, class 5 have no drawing"),
        (([], [], q), "have no drawing"),
        ((x, [0, 1, 2, 3], q), "5 support drawings but 4 labels"),
        ((x, [0, 1, 2, 3, 7], q), "label 7 is not a class of this 5-way model"),
        ((x, [0, 1, 2, 3, 4.5], q), "class numbers"),
        ((x[:, :, :20], y, q), r"drawing 1 of class 1 has shape \(1, 20, 28\)"),
        ((np.concatenate([x[:4], np.zeros((1, 1, 28, 28))]), y, q), "drawing 1 of class 5 is blank"),
        ((np.concatenate([x[:4], np.full((1, 1, 28, 28), np.nan)]), y, q), "non-finite"),
        ((x * 3, y, q), r"outside \[0, 1\]"),
        ((x, y, None), "the query is blank: draw a character"),
        ((x, y, "x"), "the query is not an image"),
        ((x, y, np.zeros((1, 28, 28))), "the query is blank"),
        ((x, y, np.zeros((3, 28, 28)) + 0.5), "the query has shape"),
    ]
    for args, message in cases:
        with pytest.raises(PlaygroundError, match=message):
            session.steps(*args)
    with pytest.raises(PlaygroundError, match="steps"):
        session.steps(x, y, q, n_steps=-1)
    # (H, W) images of a grayscale family are taken as (1, H, W)
    assert len(list(session.steps(x[:, 0], y, q[0]))) == 2


def test_what_it_cannot_play_with_is_said(glyph_models, tmp_path):
    from pathlib import Path

    nav = load_bundle(Path(__file__).parent / "data" / "navigation-maml-trpo.safetensors")
    assert not ClassificationSession.supports(nav)
    assert "not a navigation model" in ClassificationSession.why_not(nav)
    assert "no model" in ClassificationSession.why_not(None)
    with pytest.raises(PlaygroundError, match="baseline"):
        ClassificationSession(glyph_models["maml"], nav)
    assert ClassificationSession.supports(glyph_models["protonet"])


def test_a_cancelled_run_stops_between_steps(glyph_models):
    session = ClassificationSession(glyph_models["maml"], glyph_models["pretrained"])
    task = session.sample_task(1)
    cancel = threading.Event()
    cancel.set()
    assert list(session.steps(task.images, task.labels, task.query, cancel=cancel)) == []
    cancel = threading.Event()
    seen = []
    for r in session.steps(task.images, task.labels, task.query, cancel=cancel):
        seen.append(r.step)
        if r.step == 1:
            cancel.set()
    assert seen == [0, 1]


def test_canvas_sizes_follow_the_page_within_their_bounds():
    from workbench.services.playground_classification import canvas_side, query_side

    assert canvas_side(600, 5, 52, 112, 6) == 112  # room to spare: the largest
    assert canvas_side(400, 5, 52, 112, 6) == 75  # (400 - 4 * 6) / 5
    assert canvas_side(100, 5, 52, 112, 6) == 52  # too little: the smallest (the rows scroll)
    assert canvas_side(300, 0, 52, 112, 6) == 112  # no rows yet
    assert query_side(1400, 800, 300, 96, 220) == 220
    assert query_side(1000, 400, 300, 96, 220) == 144  # a third of the height
    assert query_side(400, 800, 300, 96, 220) == 96  # never below the smallest


def test_texts_of_the_results():
    from workbench.services.playground_classification import (after_text, bar_label, classification_summary,
                                                              step_text)

    assert after_text(0, False) == "before adapting" and after_text(1, False) == "1 step"
    assert after_text(3, False) == "3 steps" and after_text(2, True) == "prototypes"
    assert step_text(2, 3, False) == "step 2 of 3" and step_text(1, 3, True) == "step 1 of 3 (running)"
    assert step_text(0, 0, False) == "one prediction: no inner steps"
    assert bar_label(0.25, True) == ("25% ◀", False) and bar_label(0.25, False) == ("25%", False)
    assert bar_label(0.9, True) == ("90%", True)  # a long bar: the number inside its end
    r = ClassStep(1, np.array([0.1, 0.7, 0.2]), 1, np.array([0.5, 0.2, 0.3]), 1)
    assert classification_summary(r, "maml", "pretrained", 1) == \
        "maml: class 2 (70%); pretrained: class 1 (50%); the query is class 2"
    assert classification_summary(ClassStep(0, np.array([0.6, 0.4]), 0, None, None), "protonet", None, None) == \
        "protonet: class 1 (60%)"
