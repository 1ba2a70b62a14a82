"""Model bundles: round trip, the load_model API, ONNX, and refusal of corrupt or foreign files."""

import numpy as np
import pytest
import torch

import workbench
from conftest import tiny_config
from workbench.core import seeding
from workbench.core.adaptation import inner_step
from workbench.core.errors import BundleError
from workbench.core.storage import save_tensors
from workbench.services.trainer import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = {}
    for algo in ("maml", "metasgd", "anil"):
        run = tmp_path_factory.mktemp(algo)
        trainer = Trainer(tiny_config(algo, 40), run / "r")
        result = trainer.run()
        out[algo] = (trainer, result.bundle_path)
    return out


@pytest.mark.parametrize("algo", ["maml", "metasgd", "anil"])
def test_round_trip_gives_identical_predictions(trained, algo):
    trainer, path = trained[algo]
    model = workbench.load_model(path)
    b = trainer.eval_batch
    rule = trainer.learner.adaptation_rule()
    for t in range(3):
        xs, ys, xq = b.xs[t].numpy(), b.ys[t].numpy(), b.xq[t].numpy()
        for steps in (0, 1, 5):
            with torch.no_grad():
                fast = trainer.learner.params
                net = trainer.learner.network
                for _ in range(steps):
                    fast = inner_step(net, fast, rule, b.xs[t:t + 1], b.ys[t:t + 1])
                expected = net.forward(fast, b.xq[t:t + 1])[0].numpy()
            got = model.adapt(xs, ys, steps=steps).predict(xq)
            assert got.shape == (xq.shape[0], 1)
            np.testing.assert_array_equal(got, expected)
    assert model.meta["algorithm"] == trainer.config.algorithm_name
    assert model.meta["adaptation"]["steps"] == 1
    assert model.meta["training"]["iterations"] == 40


def test_metasgd_bundle_keeps_learned_learning_rates(trained):
    trainer, path = trained["metasgd"]
    model = workbench.load_model(path)
    assert model.meta["adaptation"]["lr"] == "per-parameter"
    for a, b in zip(model.rule.lrs, trainer.learner.extras["lrs"]):
        assert torch.equal(a, b.detach())


def test_load_model_api_and_defaults(trained):
    trainer, path = trained["maml"]
    model = workbench.load_model(path)
    x = np.linspace(-5, 5, 10)[:, None]
    y = 2 * np.sin(x - 1)
    adapted = model.adapt(x, y)  # default steps: the trained one
    np.testing.assert_array_equal(adapted.predict(x), model.adapt(x, y, steps=1).predict(x))
    assert not np.array_equal(adapted.predict(x), model.predict(x))
    assert workbench.load_model(trainer.run_dir).path == model.path  # a run directory works too
    with pytest.raises(ValueError, match=r"x_support must have shape \(N, 1\)"):
        model.adapt(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        model.adapt(np.full((3, 1), np.nan), np.zeros((3, 1)))
    res = model.evaluate(tasks=30, seed=3, steps=[0, 1, 10])
    assert res["metric"] == "mse" and res["steps"] == [0, 1, 10] and len(res["mean"]) == 3
    assert res["mean"][1] < res["mean"][0]


def test_onnx_export_matches_in_onnxruntime(trained, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    trainer, path = trained["maml"]
    model = workbench.load_model(path)
    out = model.to_onnx(tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.linspace(-5, 5, 37, dtype=np.float32)[:, None]
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_allclose(y, model.predict(x), rtol=1e-5, atol=1e-5)


def _fresh_bundle(trained, tmp_path):
    _, path = trained["maml"]
    data = open(path, "rb").read()
    return data


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d[: len(d) // 2], "corrupt tensor data"),
    (lambda d: b"", "too short"),
    (lambda d: b"\x00" * 100, "bad header"),
    (lambda d: b"not a bundle at all, just text " * 4, "not a safetensors file"),
])
def test_corrupt_bundles_are_refused(trained, tmp_path, mutate, expected):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(mutate(_fresh_bundle(trained, tmp_path)))
    with pytest.raises(BundleError) as e:
        workbench.load_model(bad)
    assert str(bad) in str(e.value) and expected in str(e.value)


def test_foreign_incompatible_and_missing_bundles(tmp_path):
    p = tmp_path / "foreign.safetensors"
    save_tensors(p, {"w": torch.zeros(2)}, {"format": "something-else"})
    with pytest.raises(BundleError, match="not a workbench model bundle"):
        workbench.load_model(p)
    save_tensors(p, {"w": torch.zeros(2)}, {"format": "workbench-model", "format_version": 99})
    with pytest.raises(BundleError, match="newer than this workbench supports"):
        workbench.load_model(p)
    save_tensors(p, {"w": torch.zeros(2)}, {"format": "workbench-model", "format_version": 1, "family": "nope"})
    with pytest.raises(BundleError, match="unknown task family 'nope'"):
        workbench.load_model(p)
    with pytest.raises(BundleError, match="no such file"):
        workbench.load_model(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("change, expected", [
    (lambda t, m: m["adaptation"].update(first=7), "adaptation.first = 7 but the network has 6 parameters"),
    (lambda t, m: m["adaptation"].update(steps=-1), "adaptation.steps = -1 is negative"),
    (lambda t, m: m["model"].update(activation="gelu"), "model.activation = 'gelu': expected one of 'relu', 'tanh'"),
    (lambda t, m: m["model"].update(param_names=["a"] * 6), "model.param_names: the bundle's parameters"),
    (lambda t, m: m["model"].update(in_shape=[2]), "model.in_shape = [2]: expected [1]"),
    (lambda t, m: m["adaptation"].update(loss="cross_entropy"), "adaptation.loss = 'cross_entropy'"),
    (lambda t, m: m["adaptation"].update(first=1), "adaptation.first = 1: expected the first parameter of a layer"),
    (lambda t, m: m.update(format_version=0), "format version 0 is not valid"),
    (lambda t, m: t["param.0"].fill_(float("inf")), "param.0 holds NaN or infinite weights"),
    (lambda t, m: m["adaptation"].update(lr=float("nan")), "adaptation.lr = nan is not a finite number"),
    (lambda t, m: (m["adaptation"].update(lr="per-parameter"), t.update({f"lr.{i}": torch.zeros(2) for i in range(6)})),
     "lr.0 must be finite with the shape of its parameter (1, 40), got (2,)"),
])
def test_crafted_bundles_are_refused(trained, tmp_path, change, expected):
    from workbench.core.storage import load_tensors

    _, path = trained["maml"]
    tensors, meta = load_tensors(path)
    change(tensors, meta)
    p = tmp_path / "crafted.safetensors"
    save_tensors(p, tensors, meta)
    with pytest.raises(BundleError) as e:
        workbench.load_model(p)
    assert expected in str(e.value) and str(p) in str(e.value)


def test_test_tasks_never_coincide_with_training_or_held_out_tasks(trained):
    trainer, path = trained["maml"]
    model = workbench.load_model(path)
    for seed in (0, 1, trainer.config.run.seed, trainer.config.run.eval_seed):
        fresh = model.family.evaluation_batch(50, seed, stream=seeding.TEST).params
        train = trainer.family.sample_batch(500, seeding.generator(seeding.TRAIN, seed)).params
        held = trainer.family.evaluation_batch(50, seed).params
        assert not (fresh[:, None] == train[None]).all(-1).any()
        assert not (fresh[:, None] == held[None]).all(-1).any()
        assert not (held[:, None] == train[None]).all(-1).any()


def test_loading_never_unpickles(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    p = tmp_path / "evil.safetensors"
    torch.save({"x": Boom()}, p)
    with pytest.raises(BundleError):
        workbench.load_model(p)


def test_shape_mismatch_is_reported(trained, tmp_path):
    from workbench.core.storage import load_tensors

    _, path = trained["maml"]
    tensors, meta = load_tensors(path)
    tensors["param.2"] = torch.zeros(3, 3)
    p = tmp_path / "m.safetensors"
    save_tensors(p, tensors, meta)
    with pytest.raises(BundleError, match=r"param.2 has shape \(3, 3\)"):
        workbench.load_model(p)


@pytest.mark.parametrize("algo", ["maml", "metasgd", "anil"])
def test_a_format_1_bundle_still_loads_and_adapts_the_same(trained, tmp_path, algo):
    """Bundles written before the model-agnostic engine (format 1: an MLP spec, adaptation.first_layer)."""
    from workbench.core.storage import load_tensors

    trainer, path = trained[algo]
    tensors, meta = load_tensors(path)
    model = meta["model"]
    old = {**{k: v for k, v in meta.items() if k != "kind"}, "format_version": 1,
           "model": {"in_dim": 1, "out_dim": 1, "hidden": model["hidden"], "activation": model["activation"]},
           "adaptation": {"first_layer": meta["adaptation"]["first"] // 2, "steps": meta["adaptation"]["steps"],
                          "lr": meta["adaptation"]["lr"]}}
    save_tensors(tmp_path / "old.safetensors", tensors, old)
    new, legacy = workbench.load_model(path), workbench.load_model(tmp_path / "old.safetensors")
    b = trainer.eval_batch
    xs, ys, xq = b.xs[0].numpy(), b.ys[0].numpy(), b.xq[0].numpy()
    np.testing.assert_array_equal(legacy.adapt(xs, ys, steps=2).predict(xq), new.adapt(xs, ys, steps=2).predict(xq))
    assert legacy.rule.first == new.rule.first
