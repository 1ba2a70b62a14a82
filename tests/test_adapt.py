"""`workbench adapt`: the adapted model, written as a bundle and as ONNX, predicts what the workbench's own
adaptation predicts; its int8 copy stays within the documented tolerance; bad samples are one line, exit 2,
and nothing is written."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench
from conftest import tiny_config
from workbench.cli import main
from workbench.services.onnx_export import run_onnx
from workbench.services.trainer import Trainer

FLOAT_TOL = 1e-4  # ONNX (float32) against the workbench's adapted predictions
# int8 (onnxruntime's dynamic quantisation: int8 weights, activations quantised per batch): outputs within 5% of
# the float outputs' range, and a classifier's predicted classes the same on at least 90% of the images
INT8_REL_TOL, INT8_AGREEMENT = 0.05, 0.9


@pytest.fixture(scope="module")
def sinusoid(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    path = Path(Trainer(tiny_config("maml", 30), root / "maml").run().bundle_path)
    rng = np.random.default_rng(0)

    def points(n, name, header):
        x = rng.uniform(-5, 5, n)
        f = root / name
        np.savetxt(f, np.c_[x, 2.0 * np.sin(x - 0.5)], delimiter=",", header="x,y" if header else "", comments="")
        return f

    return path, points(10, "support.csv", True), points(50, "query.csv", False)


def glyph_task_folder(model, root: Path, per_class: int, seed: int) -> tuple[Path, np.ndarray]:
    from PIL import Image

    batch = model.family.evaluation_batch(1, seed, shots=per_class)
    images, labels = batch.xs[0], batch.ys[0]
    for i, (img, y) in enumerate(zip(images, labels.tolist())):
        d = root / f"class_{y}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8)).save(d / f"{i}.png")
    return root, labels.numpy()


def float64_predictions(adapted, x: np.ndarray) -> np.ndarray:
    """The adapted bundle's outputs on ``x`` computed in float64 (its module cast, then cast back)."""
    from workbench.core.adaptation import distance_logits

    net = adapted.network
    try:
        net.module.double()
        params = [p.double() for p in adapted.params]
        with torch.no_grad():
            z = net.forward(params, torch.as_tensor(x, dtype=torch.float64).unsqueeze(0))
            if adapted.task_prototypes is None:
                return z[0].numpy()
            return distance_logits(z, adapted.task_prototypes.double().unsqueeze(0))[0].numpy()
    finally:
        net.module.float()


def run(args, capsys):
    code = main(["adapt", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out.strip().splitlines(), out.err.strip()


def test_a_sinusoid_adapted_from_a_csv_is_a_bundle_and_an_onnx_that_predict_alike(sinusoid, tmp_path, capsys):
    bundle, support, query = sinusoid
    out = tmp_path / "adapted"
    code, lines, err = run([bundle, "--support", support, "--query", query, "--steps", 3, "--out", out,
                            "--quantize", "int8"], capsys)
    assert code == 0, err
    assert lines[-1] == str(out) and sorted(p.name for p in out.iterdir()) == ["model.int8.onnx", "model.onnx",
                                                                              "model.safetensors"]
    data = np.loadtxt(support, delimiter=",", skiprows=1)
    q = np.loadtxt(query, delimiter=",")
    want = workbench.load_model(bundle).adapt(data[:, :1], data[:, 1:], steps=3).predict(q[:, :1])
    adapted = workbench.load_model(out / "model.safetensors")
    assert adapted.meta["adapted"]["steps"] == 3 and adapted.meta["adapted"]["from"] == str(bundle)
    np.testing.assert_allclose(adapted.predict(q[:, :1]), want, atol=1e-6)
    onnx = run_onnx(out / "model.onnx", q[:, :1])
    assert np.abs(onnx - want).max() <= FLOAT_TOL
    int8 = run_onnx(out / "model.int8.onnx", q[:, :1])
    assert np.abs(int8 - onnx).max() <= INT8_REL_TOL * np.ptp(onnx)
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    assert any(line.startswith("int8 ONNX:") and "x the float model's" in line for line in lines)
    assert any(line.startswith("mse on the query samples: float") for line in lines)


@pytest.mark.parametrize("algorithm", ["maml", "protonet"])
def test_a_classifier_adapted_from_an_image_folder_exports_its_task_classifier(glyph_bundles, tmp_path, capsys,
                                                                              algorithm):
    model = workbench.load_model(glyph_bundles[algorithm])
    support, _ = glyph_task_folder(model, tmp_path / "support", 1, seed=1)
    query, labels = glyph_task_folder(model, tmp_path / "query", 4, seed=1)
    out = tmp_path / "adapted"
    code, lines, err = run([glyph_bundles[algorithm], "--support", support, "--query", query, "--out", out,
                            "--quantize", "int8"], capsys)
    assert code == 0, err
    adapted = workbench.load_model(out / "model.safetensors")
    from workbench.services.adapt import read_samples

    q = read_samples(model, query)
    s = read_samples(model, support)
    want = model.adapt(s.x, s.y).predict(q.x)
    np.testing.assert_allclose(adapted.predict(q.x), want, atol=1e-5)  # the bundle is the task's classifier
    onnx = run_onnx(out / "model.onnx", q.x)
    # against the exact predictions (float64): batch norm over a few images of a tiny untrained conv net is
    # ill-conditioned, and the workbench's own float32 logits are up to ~3e-4 from them (ONNX's ~6e-5)
    assert np.abs(onnx - float64_predictions(adapted, q.x)).max() <= FLOAT_TOL
    assert (onnx.argmax(1) == want.argmax(1)).all()
    int8 = run_onnx(out / "model.int8.onnx", q.x)
    assert (int8.argmax(1) == onnx.argmax(1)).mean() >= INT8_AGREEMENT
    assert any(line.startswith("accuracy on the query samples: float") for line in lines)


def test_a_policy_adapted_to_a_goal_exports_its_adapted_mean_action(navigation_bundle, tmp_path, capsys):
    out = tmp_path / "adapted"
    code, lines, err = run([navigation_bundle, "--support", "goal_x=0.3,goal_y=-0.2", "--steps", 1, "--out", out,
                            "--quantize", "int8"], capsys)
    assert code == 0, err
    adapted = workbench.load_model(out / "model.safetensors")
    original = workbench.load_model(navigation_bundle)
    assert adapted.meta["adapted"]["task"] == {"goal_x": 0.3, "goal_y": pytest.approx(-0.2)}
    assert not all(torch.equal(a, b) for a, b in zip(adapted.params, original.params))  # it moved
    obs = torch.rand(16, 2) - 0.5
    mean = adapted.learner.policy.mode(adapted.params, obs.unsqueeze(0))[0].detach()
    assert np.abs(run_onnx(out / "model.onnx", obs.numpy()) - mean.numpy()).max() <= FLOAT_TOL
    assert any(line.startswith("return on 4 episodes in the task: float") for line in lines), lines


@pytest.mark.parametrize("make, expected", [
    (lambda d: (d / "s.csv").write_text("x,y\n1,2,3\n"), "row 1 has 3 column(s); expected 2"),
    (lambda d: (d / "s.csv").write_text("1,2\n3,nan\n"), "row 2: ['3', 'nan'] holds NaN"),
    (lambda d: (d / "s.csv").write_text("1,2\n3,abc\n"), "row 2: 'abc' is not a number"),
    (lambda d: (d / "s.csv").write_text("x,y\n"), "no data rows"),
    (lambda d: (d / "s.csv").mkdir(), "no such file"),
    (lambda d: (d / "s.csv").write_text("x,y\n" + "1" * 200_000 + ",2\n"), "not a CSV of numbers"),
    (lambda d: (d / "s.csv").write_text("1,1e39\n"), "beyond float32's range"),
])
def test_bad_samples_are_one_line_with_exit_2_and_nothing_is_written(sinusoid, tmp_path, capsys, make, expected):
    make(tmp_path)
    out = tmp_path / "out"
    code, lines, err = run([sinusoid[0], "--support", tmp_path / "s.csv", "--out", out], capsys)
    assert code == 2 and expected in err and len(err.splitlines()) == 1, err
    assert not out.exists() and lines == []


def test_wrong_tasks_for_the_family_and_a_used_folder_are_refused(sinusoid, navigation_bundle, glyph_bundles,
                                                                  tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    code, _, err = run([sinusoid[0], "--support", sinusoid[1], "--out", used], capsys)
    assert code == 2 and "is not empty" in err and (used / "keep.txt").read_text() == "mine"
    code, _, err = run([navigation_bundle, "--support", "goal_x=3,goal_y=0", "--out", tmp_path / "a"], capsys)
    assert code == 2 and "goal_x = 3 is outside the navigation family's range" in err
    code, _, err = run([navigation_bundle, "--support", "goal_y=0.1", "--out", tmp_path / "a"], capsys)
    assert code == 2 and "goal_x missing" in err  # never a default taken in silence
    twice = "goal_x=0.3,goal_x=0.1,goal_y=0"
    code, _, err = run([navigation_bundle, "--support", twice, "--out", tmp_path / "a"], capsys)
    assert code == 2 and "goal_x is given 2 times" in err
    nested = tmp_path / "task.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run([navigation_bundle, "--support", nested, "--out", tmp_path / "a"], capsys)
    assert code == 2 and "not a JSON object of task parameters" in err and len(err.splitlines()) == 1
    code, _, err = run([navigation_bundle, "--support", "speed=1", "--out", tmp_path / "a"], capsys)
    assert code == 2 and "unknown task parameter(s) speed" in err
    code, _, err = run([glyph_bundles["maml"], "--support", sinusoid[1], "--out", tmp_path / "a"], capsys)
    assert code == 2 and "not a folder" in err
    two = tmp_path / "two"
    for c in ("a", "b"):
        (two / c).mkdir(parents=True)
    from PIL import Image

    for c in ("a", "b"):
        Image.new("L", (28, 28)).save(two / c / "0.png")
    code, _, err = run([glyph_bundles["maml"], "--support", two, "--out", tmp_path / "a"], capsys)
    assert code == 2 and "2 class folders; this maml model classifies 5 classes" in err
    assert not (tmp_path / "a").exists()
    assert json.dumps(err)  # one line each


def test_out_may_be_the_current_empty_folder(sinusoid, tmp_path, capsys, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    code, lines, err = run([sinusoid[0], "--support", sinusoid[1], "--out", "."], capsys)
    assert code == 0, err
    assert sorted(p.name for p in here.iterdir()) == ["model.onnx", "model.safetensors"]


def test_the_fused_mlp_as_a_prototype_embedding_exports_the_workbenchs_own_logits(tmp_path):
    from workbench.core.adaptation import distance_logits
    from workbench.models.mlp import MLPSpec
    from workbench.models.network import FastMLP
    from workbench.services.onnx_export import write_network_onnx

    net = FastMLP(MLPSpec(3, 8, (16,), "relu"))
    params = net.init(torch.Generator().manual_seed(0))
    protos = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    write_network_onnx(tmp_path / "p.onnx", net, params, protos)
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(2))
    want = distance_logits(net.forward(params, x[None]), protos[None])[0].numpy()
    assert np.abs(run_onnx(tmp_path / "p.onnx", x.numpy()) - want).max() <= FLOAT_TOL
