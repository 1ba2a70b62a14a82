"""Behaviour, not plumbing: after a short meta-training every algorithm adapts, on held-out tasks."""
import numpy as np
import pytest

from conftest import tiny_config
from workbench.services.trainer import Trainer

ITERATIONS = {"maml": 400, "fomaml": 400, "metasgd": 400, "anil": 400, "reptile": 400, "pretrained": 400,
              "scratch": 0}


@pytest.mark.parametrize("algorithm", list(ITERATIONS))
def test_adapted_loss_beats_unadapted_on_held_out_tasks(algorithm):
    cfg = tiny_config(algorithm, ITERATIONS[algorithm], eval_tasks=100, eval_interval=10_000)
    trainer = Trainer(cfg)
    result = trainer.run()
    assert result.status == "finished"
    e = trainer.last_eval
    assert e.iteration == ITERATIONS[algorithm] and e.per_task.shape == (100, 4)
    k = min(e.trained_steps, e.steps[-1])
    before, after = e.mean[0], e.mean[k]
    # the improvement is larger than the uncertainty of the difference
    diff = e.per_task[:, 0] - e.per_task[:, k]
    assert after < before and diff.mean() > 2 * diff.std(ddof=1) / np.sqrt(len(diff)), (before, after)


def test_meta_learning_beats_the_baselines_after_one_step():
    results = {}
    for algorithm in ("maml", "pretrained", "scratch"):
        trainer = Trainer(tiny_config(algorithm, ITERATIONS[algorithm] and 600, eval_tasks=100,
                                      eval_interval=10_000))
        trainer.run()
        results[algorithm] = trainer.last_eval.mean[1]
    assert results["maml"] < results["pretrained"] and results["maml"] < results["scratch"], results


def test_training_is_seeded():
    a, b = Trainer(tiny_config("maml", 30)), Trainer(tiny_config("maml", 30))
    a.run(), b.run()
    for p, q in zip(a.learner.params, b.learner.params):
        assert (p == q).all()
    c = Trainer(tiny_config("maml", 30, seed=1))
    c.run()
    assert not (a.learner.params[0] == c.learner.params[0]).all()


def test_held_out_tasks_are_fixed_and_not_training_tasks():
    t = Trainer(tiny_config("maml", 0))
    again = Trainer(tiny_config("maml", 0, seed=5))
    assert (t.eval_batch.params == again.eval_batch.params).all()  # same held-out set whatever the seed
    train = t.family.sample_batch(1000, t.task_gen).params
    held = t.eval_batch.params
    assert not (train[:, None, :] == held[None, :, :]).all(-1).any()
