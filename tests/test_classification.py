"""N-way K-shot image classification: the glyph family's tasks, rotations, Prototypical Networks, and short
MAML / ProtoNets runs that beat chance on held-out characters."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench
from workbench.core.config import ExperimentConfig
from workbench.core.errors import ConfigError
from workbench.services.trainer import Trainer
from workbench.tasks.classification import ROTATIONS
from workbench.tasks.glyphs import Glyphs, GlyphsConfig

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(background_classes=30, evaluation_classes=12, drawings=8, query=3, eval_query=3)


def glyphs(**kw) -> Glyphs:
    return Glyphs(GlyphsConfig(**{**SMALL, **kw}))


def drawings_of(pool, c: int) -> torch.Tensor:
    """Every drawing of class ``c`` of ``pool`` (D, 1, H, W)."""
    d = int(pool.per_class[c])
    return pool.images(torch.full((d,), c), torch.arange(d))


def find(image: torch.Tensor, pool, turns: int) -> set[tuple[int, int]]:
    """(class, quarter turns) of ``pool`` whose drawings contain ``image`` exactly."""
    found = set()
    for c in range(pool.n_classes):
        for k in range(turns):
            if (torch.rot90(drawings_of(pool, c), k, (-2, -1)) == image).all((1, 2, 3)).any():
                found.add((c, k))
    return found


def test_batches_have_the_n_way_k_shot_shapes_and_class_major_labels():
    fam = glyphs(ways=4, shots=2, query=3, rotations=False)
    b = fam.sample_batch(3, torch.Generator().manual_seed(0))
    assert b.xs.shape == (3, 8, 1, 28, 28) and b.xq.shape == (3, 12, 1, 28, 28)
    assert b.ys.dtype == torch.int64 and b.ys[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert b.yq[1].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert b.params.shape == (3, 4) and all(len(set(row.tolist())) == 4 for row in b.params)  # N distinct classes
    assert 0.0 <= float(b.xs.min()) and float(b.xs.max()) <= 1.0 and float(b.xs.mean()) < 0.5  # white ink on black
    for t in range(3):  # every image of label k is a drawing of the task's k-th class; no drawing twice in a task
        for k in range(4):
            c = int(b.params[t, k])
            mine = torch.cat([b.xs[t][b.ys[t] == k], b.xq[t][b.yq[t] == k]])
            pool = drawings_of(fam.background, c)
            index = [int((pool == img).all((1, 2, 3)).nonzero()[0]) for img in mine]
            assert len(set(index)) == len(index) == 5


def test_training_never_sees_an_evaluation_class_and_evaluation_never_a_background_one():
    fam = glyphs(ways=3, shots=1, query=1, eval_query=1, rotations=True)
    train = fam.sample_batch(2, torch.Generator().manual_seed(1))
    held = fam.evaluation_batch(2, seed=3)
    for img in train.xs.flatten(0, 1)[:4]:
        assert find(img, fam.background, ROTATIONS) and not find(img, fam.evaluation, ROTATIONS)
    for img in held.xs.flatten(0, 1)[:4]:
        assert find(img, fam.evaluation, ROTATIONS) and not find(img, fam.background, ROTATIONS)


def test_rotations_make_four_classes_of_each_character():
    plain, rotated = glyphs(rotations=False), glyphs(rotations=True)
    assert rotated.classes(rotated.background) == ROTATIONS * plain.classes(plain.background) == 4 * 30
    b = rotated.tasks(rotated.background, 64, 1, 1, torch.Generator().manual_seed(2))
    turns = (b.params % ROTATIONS).flatten()
    assert set(turns.tolist()) == {0, 1, 2, 3}  # every quarter turn is drawn as a class
    task, label = divmod(int((turns == 1).nonzero()[0]), 5)
    c = int(b.params[task, label]) // ROTATIONS
    assert (torch.rot90(drawings_of(rotated.background, c), 1, (-2, -1)) == b.xs[task, label]).all((1, 2, 3)).any()


def test_the_characters_are_fixed_by_the_data_set_seed_whatever_the_pool_sizes():
    a = drawings_of(glyphs(background_classes=10).background, 3)
    b = drawings_of(glyphs(background_classes=40).background, 3)
    c = drawings_of(glyphs(background_classes=10, dataset_seed=1).background, 3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, drawings_of(glyphs().evaluation, 3))  # the pools are different characters


def test_a_class_needs_as_many_drawings_as_shots_and_queries(tmp_path):
    with pytest.raises(ConfigError, match=r"shots \+ query = 16 images per class, but a character has drawings = 5"):
        ExperimentConfig.load(REPO / "presets" / "protonet-glyphs-5w1s.toml", ["task.drawings=5"])
    r = subprocess.run([sys.executable, "-m", "workbench", "train", "protonet-glyphs-5w1s", "--set", "task.drawings=5",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "drawings = 5" in r.stderr
    assert not (tmp_path / "run").exists()


def test_prototypes_are_the_mean_support_embeddings():
    cfg = ExperimentConfig.load(REPO / "presets" / "protonet-glyphs-5w1s.toml",
                                [f"task.{k}={v}" for k, v in SMALL.items()] + ["task.shots=3", "model.channels=4"])
    trainer = Trainer(cfg)
    learner, batch = trainer.learner, trainer.family.evaluation_batch(2, 0)
    protos = learner.adapt(batch.xs, batch.ys)
    with torch.no_grad():
        z = learner.network.forward([p.detach() for p in learner.params], batch.xs)
    assert protos.shape == (2, 5, z.shape[-1])
    for t in range(2):
        for k in range(5):
            assert torch.allclose(protos[t, k], z[t][batch.ys[t] == k].mean(0), atol=1e-5)


def run_and_eval(tmp_path, preset: str, overrides: list[str]) -> dict:
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "workbench", "train", preset, "--out", str(out), "--quiet",
                        *[a for o in overrides for a in ("--set", o)]], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(out / "model.safetensors")
    r = subprocess.run([sys.executable, "-m", "workbench", "eval", str(out), "--json", "--tasks", "100",
                        "--steps", "0" if "protonet" in preset else "0,1"], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


TINY = [f"task.{k}={v}" for k, v in SMALL.items()] + ["task.background_classes=200", "run.eval_tasks=20",
                                                      "run.checkpoint_interval=1000"]


def test_a_short_protonet_run_beats_chance_on_held_out_characters(tmp_path):
    report = run_and_eval(tmp_path, "protonet-glyphs-5w1s",
                          TINY + ["model.channels=16", "algorithm.train_ways=15", "run.iterations=40",
                                  "run.eval_interval=40"])
    assert report["metric"] == "accuracy" and report["steps"] == [0] and report["shots"] == 1
    low = report["mean"][0] - report["ci95"][0]
    assert low > 0.4, report["mean"]  # chance: 0.2
    model = workbench.load_model(tmp_path / "run")
    batch = model.family.evaluation_batch(1, 7)
    adapted = model.adapt(batch.xs[0].numpy(), batch.ys[0].numpy())
    logits = adapted.predict(batch.xq[0].numpy())
    assert logits.shape == (15, 5)
    assert np.mean(logits.argmax(-1) == batch.yq[0].numpy()) > 0.2


def test_a_short_maml_run_beats_chance_on_held_out_characters_after_adapting(tmp_path):
    report = run_and_eval(tmp_path, "maml-glyphs-5w1s",
                          TINY + ["model.channels=16", "algorithm.meta_batch=4", "run.iterations=60",
                                  "run.eval_interval=60", "run.eval_steps=1"])
    assert report["metric"] == "accuracy" and report["steps"] == [0, 1]
    before, after = report["mean"]
    assert after - report["ci95"][1] > 0.35 and after > before + 0.1, report["mean"]  # chance: 0.2


def test_a_protonet_bundle_refuses_inner_steps(tmp_path):
    run_and_eval(tmp_path, "protonet-glyphs-5w1s", TINY + ["model.channels=4", "run.iterations=1",
                                                           "run.eval_interval=1"])
    r = subprocess.run([sys.executable, "-m", "workbench", "eval", str(tmp_path / "run"), "--steps", "1"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "no inner steps" in r.stderr and "Traceback" not in r.stderr


def test_adapting_only_a_linear_head_runs_the_body_once_and_gives_the_same_curve(monkeypatch):
    from workbench.core.adaptation import AdaptationRule, adaptation_curve
    from workbench.core.config import ModelConfig
    from workbench.models.network import FunctionalNetwork
    from workbench.models.zoo import build_network

    fam = glyphs(rotations=False)
    net = build_network(ModelConfig(name="conv4", channels=6), fam.in_shape, 5, "cross_entropy")
    params = net.init(torch.Generator().manual_seed(0))
    batch = fam.evaluation_batch(3, 0)
    k = net.head_start
    rule = AdaptationRule([0.5] * (len(params) - k), k, 3, "cross_entropy")
    grid = batch.xq[:, :4]
    fast, fast_preds = adaptation_curve(net, params, rule, batch.xs, batch.ys, batch.xq, batch.yq, 3, grid,
                                        metric="accuracy")
    calls = []
    forward = FunctionalNetwork.forward
    monkeypatch.setattr(FunctionalNetwork, "split_head", lambda self: None)
    monkeypatch.setattr(FunctionalNetwork, "forward", lambda self, p, x: calls.append(1) or forward(self, p, x))
    slow, slow_preds = adaptation_curve(net, params, rule, batch.xs, batch.ys, batch.xq, batch.yq, 3, grid,
                                        metric="accuracy")
    assert len(calls) > 3 * 4  # the path without the split runs the body at every step
    assert torch.allclose(fast, slow) and torch.allclose(fast_preds, slow_preds, atol=1e-4)


def test_more_training_ways_than_classes_is_refused_before_the_run(tmp_path):
    r = subprocess.run([sys.executable, "-m", "workbench", "train", "protonet-glyphs-5w1s", "--out", str(tmp_path / "r"),
                        "--set", "algorithm.train_ways=500", "--set", "task.background_classes=100",
                        "--set", "model.channels=4"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "train_ways = 500" in r.stderr and "400 training classes" in r.stderr
    assert not (tmp_path / "r").exists()


def test_a_600_task_evaluation_of_conv4_fits_in_memory_one_task_at_a_time():
    from workbench.services.budget import estimate

    cfg = ExperimentConfig.load(REPO / "presets" / "protonet-glyphs-5w1s.toml")
    fam = Glyphs(cfg.task)
    parts = dict(estimate(cfg, fam, eval_tasks=600, eval_steps=0))
    data = 600 * 5 * 16 * 28 * 28 * 4  # the images of 600 5-way tasks with 1 + 15 images per class
    assert data <= parts["the held-out evaluation"] < 2 * data + 2**28


def test_training_prefetches_the_characters_and_that_changes_no_drawing_and_no_task():
    fam, fresh = glyphs(rotations=False), glyphs(rotations=False)
    first = fam.sample_batch(2, torch.Generator().manual_seed(5))  # starts the prefetch thread
    fam.background._prefetching.join(timeout=60)
    assert bool(fam.background._rendered.all())
    every = torch.arange(fam.background.n_classes)
    assert torch.equal(fam.background.images(every, torch.zeros_like(every)),
                       fresh.background.images(every, torch.zeros_like(every)))
    again = fresh.sample_batch(2, torch.Generator().manual_seed(5))
    assert torch.equal(first.xs, again.xs) and torch.equal(first.xq, again.xq)


class ScaledHead(torch.nn.Module):
    """A linear head whose output the module changes afterwards: no body/head split."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.body(x)) * 4.0


def test_a_head_whose_output_the_module_changes_is_not_split():
    from workbench.core.config import ModelConfig
    from workbench.models.network import FunctionalNetwork

    net = FunctionalNetwork(ScaledHead, (1, 28, 28), 5)
    assert net.split_head() is None
    from workbench.models.zoo import build_network

    conv = build_network(ModelConfig(name="conv4", channels=4), (1, 28, 28), 5, "cross_entropy")
    assert conv.split_head() is not None


def test_a_glyph_cache_larger_than_memory_is_refused_before_the_run(tmp_path):
    r = subprocess.run([sys.executable, "-m", "workbench", "train", "protonet-glyphs-5w1s", "--out", str(tmp_path / "r"),
                        "--set", "task.background_classes=100000", "--set", "task.evaluation_classes=100000",
                        "--set", "task.drawings=1000", "--set", "model.channels=4"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "the image cache" in r.stderr and "task.drawings=1000" in r.stderr
    assert not (tmp_path / "r").exists()


def test_a_prototype_model_refuses_a_support_set_missing_a_class(tmp_path):
    run_and_eval(tmp_path, "protonet-glyphs-5w1s", TINY + ["model.channels=4", "run.iterations=1",
                                                           "run.eval_interval=1"])
    model = workbench.load_model(tmp_path / "run")
    batch = model.family.evaluation_batch(1, 0)
    with pytest.raises(ValueError, match="no image of class 1"):
        model.adapt(batch.xs[0, [0, 2, 3]].numpy(), np.array([0, 2, 3]))


def test_the_rollout_payload_counts_right_answers_and_confusions_as_the_predictions_say():
    fam = glyphs(rotations=True)
    batch = fam.evaluation_batch(3, 0)
    logits = torch.randn(3, 2, batch.xq.shape[1], 5, generator=torch.Generator().manual_seed(0))
    logits[:, 1] += 10 * torch.nn.functional.one_hot(batch.yq, 5)  # after the step: every query right
    pl = fam.render(batch, logits, batch.xq, [0, 1])
    predicted = logits.argmax(-1).numpy()
    assert (pl.predicted == predicted).all() and np.allclose(pl.accuracy[:, 1], 1.0)
    assert np.allclose(pl.accuracy[:, 0], (predicted[:, 0] == batch.yq.numpy()).mean(-1))
    assert pl.confusion[1].trace() == pl.confusion[1].sum() == 3 * batch.xq.shape[1]
    assert pl.support.shape == (3, 5, 1, 28, 28) and pl.class_names[0] == fam.class_names(batch.params[0])
