"""The engine on any network and any loss: the fused MLP kernel and the general torch.func path agree, the
general path's meta-gradient matches finite differences on a conv net, a user's own module trains and its
bundle adapts identically, batch norm never carries anything between tasks, and bad [model] input is one
line with exit 2."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import PRESETS, tiny_config
from usernets import BatchNormNet, ToyImages
from workbench.core.adaptation import inner_step
from workbench.core.registry import ALGORITHMS, FAMILIES
from workbench.models.mlp import MLPSpec
from workbench.models.modules import MLP, Conv4
from workbench.models.network import FastMLP, FunctionalNetwork

TESTS = Path(__file__).resolve().parent
CPU = torch.device("cpu")


def family(name="sinusoid"):
    cls = FAMILIES.get(name)
    return cls(cls.Config())


def toy(**cfg):
    return ToyImages(ToyImages.Config(**cfg))


def make(algo, network, fam, **cfg):
    cls = ALGORITHMS.get(algo)
    return cls(cls.Config(**cfg), network, CPU, torch.Generator().manual_seed(0), 10, family=fam)


def as_double(learner, params=None, extras=None):
    learner.params = [p.detach().double().clone().requires_grad_() for p in (params or learner.params)]
    for key, ts in (extras or learner.extras).items():
        learner.extras[key] = [t.detach().double().clone().requires_grad_() for t in ts]
    return learner


def double_batch(batch):
    f = (lambda t: t.double() if t.dtype.is_floating_point else t)
    return type(batch)(*(f(t) for t in (batch.params, batch.xs, batch.ys, batch.xq, batch.yq)))


def meta_gradient(learner, batch):
    loss = learner.outer_loss(learner.params, batch)
    return loss, torch.autograd.grad(loss, learner.meta_parameters())


@pytest.mark.parametrize("algo, cfg", [("maml", {"inner_steps": 2, "inner_lr": 0.05}),
                                       ("maml", {"first_order": True}),
                                       ("metasgd", {}), ("anil", {"inner_steps": 2, "inner_lr": 0.1})])
def test_fast_mlp_and_general_path_give_the_same_meta_gradient(algo, cfg):
    fam = family()
    spec = MLPSpec(1, 1, (40, 40), "relu")
    fast = as_double(make(algo, FastMLP(spec), fam, **cfg))
    general_net = FunctionalNetwork(lambda: MLP(1, 1, (40, 40), "relu"), (1,), 1)
    assert general_net.names == fast.network.names and general_net.head_start == fast.network.head_start
    general = as_double(make(algo, general_net, fam, **cfg), fast.params, fast.extras)
    batch = double_batch(fam.sample_batch(6, torch.Generator().manual_seed(1)))
    loss_f, grads_f = meta_gradient(fast, batch)
    loss_g, grads_g = meta_gradient(general, batch)
    assert torch.allclose(loss_f, loss_g, rtol=1e-12, atol=1e-12)
    assert len(grads_f) == len(grads_g) == len(fast.meta_parameters())
    for a, b in zip(grads_f, grads_g):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), (a - b).abs().max()
    if algo == "anil":  # the body still learns, through the adapted head
        assert grads_f[0].abs().sum() > 0


def test_general_path_meta_gradient_matches_finite_differences_on_a_conv_net():
    fam = toy(ways=3, shots=1, query=2)
    net = FunctionalNetwork(lambda: Conv4((1, 16, 16), 3, channels=3), (1, 16, 16), 3)
    learner = as_double(make("maml", net, fam, inner_lr=0.3, inner_steps=1))
    batch = double_batch(fam.sample_batch(2, torch.Generator().manual_seed(2)))
    _, grads = meta_gradient(learner, batch)
    g = torch.Generator().manual_seed(3)
    params = [p.detach() for p in learner.params]

    def loss_at(eps, v):
        shifted = [p + eps * d for p, d in zip(params, v)]
        return float(learner.outer_loss(shifted, batch).detach())

    for _ in range(3):
        v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
        eps = 1e-6
        numeric = (loss_at(eps, v) - loss_at(-eps, v)) / (2 * eps)
        analytic = float(sum((a * d).sum() for a, d in zip(grads, v)))
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


def test_task_by_task_and_vmapped_general_path_agree_and_chunked_meta_step_is_the_whole_step():
    fam = toy(ways=3)
    loop = FunctionalNetwork(lambda: Conv4((1, 16, 16), 3, channels=4), (1, 16, 16), 3)
    vmapped = FunctionalNetwork(lambda: Conv4((1, 16, 16), 3, channels=4), (1, 16, 16), 3, task_chunk=0)
    assert loop.task_chunk == 1 and not vmapped.task_chunk  # convolutions: task by task (measured faster)
    a = as_double(make("maml", loop, fam))
    b = as_double(make("maml", vmapped, fam), a.params)
    batch = double_batch(fam.sample_batch(4, torch.Generator().manual_seed(4)))
    _, ga = meta_gradient(a, batch)
    _, gb = meta_gradient(b, batch)
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, rtol=1e-8, atol=1e-10)
    # the chunked meta-step (loop) takes the same outer step as one whole-batch step (vmap)
    a, b = make("maml", loop, fam, outer_lr=0.01), make("maml", vmapped, fam, outer_lr=0.01)
    with torch.no_grad():
        for x, y in zip(a.params, b.params):
            y.copy_(x)
    batch = fam.sample_batch(4, torch.Generator().manual_seed(4))
    _, grads = meta_gradient(a, batch)
    assert a.meta_step(batch, 0)["loss"] == pytest.approx(b.meta_step(batch, 0)["loss"], rel=1e-5)
    for name, x, y, g in zip(loop.names, a.params, b.params, grads):
        # Adam's first step is lr * sign(g): an entry whose gradient is float32 rounding noise (a conv bias
        # that batch norm cancels, a near-zero entry) may take a full step either way; compare the others
        real = g.abs() > 1e-5
        assert torch.allclose(x[real], y[real], atol=1e-5), name


def test_batch_norm_statistics_never_cross_tasks():
    fam = toy(ways=3)
    net = FunctionalNetwork(lambda: BatchNormNet(3, 4), (1, 16, 16), 3)
    assert all(b is None for n, b in net.module.named_buffers() if "running" in n)  # batch statistics only
    params = net.init(torch.Generator().manual_seed(0))
    rule = make("maml", net, fam, inner_lr=0.5).adaptation_rule()
    ta = fam.sample_batch(1, torch.Generator().manual_seed(5))
    tb = fam.sample_batch(1, torch.Generator().manual_seed(6))

    def adapt_and_predict(task):
        fast = inner_step(net, params, rule, task.xs, task.ys)
        fast = inner_step(net, fast, rule, task.xs, task.ys)
        with torch.no_grad():
            return net.forward(fast, task.xq)

    b_alone = adapt_and_predict(tb)
    adapt_and_predict(ta)  # A first ...
    assert torch.equal(adapt_and_predict(tb), b_alone)  # ... changes nothing for B
    both = type(ta)(*(torch.cat([x, y]) for x, y in zip(
        (ta.params, ta.xs, ta.ys, ta.xq, ta.yq), (tb.params, tb.xs, tb.ys, tb.xq, tb.yq))))
    assert torch.allclose(adapt_and_predict(both)[1:], b_alone, atol=1e-5)  # B beside A in one batch
    # B's statistics are B's: scaling A's images by 100 leaves B's adapted outputs alone
    loud = type(both)(both.params, both.xs * torch.tensor([100.0, 1.0]).view(2, 1, 1, 1, 1), both.ys,
                      both.xq * torch.tensor([100.0, 1.0]).view(2, 1, 1, 1, 1), both.yq)
    assert torch.allclose(adapt_and_predict(loud)[1:], b_alone, atol=1e-5)
    assert not list(net.module.buffers())  # evaluation left no state behind in the module


def test_a_users_module_by_import_path_trains_maml_and_its_bundle_adapts_identically(tmp_path):
    from workbench.services.bundle import load_bundle
    from workbench.services.trainer import Trainer

    cfg = tiny_config("maml", iterations=600).replace(
        ['model.module="usernets:SineNet"', "model.kwargs={ width = 32 }", "run.eval_interval=600",
         "algorithm.outer_lr=0.005"])
    trainer = Trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.learner.network, FunctionalNetwork)
    trainer.run()
    e = trainer.last_eval
    # one trained inner step on held-out tasks: measured 3.56 -> 1.03 (the untrained module: 5.6 -> 5.3)
    assert e.metric == "mse" and e.mean[1] < 0.5 * e.mean[0], e.mean
    model = load_bundle(tmp_path / "run")
    assert model.meta["model"]["module"] == "usernets:SineNet" and model.meta["model"]["kwargs"] == {"width": 32}
    for p, q in zip(model.params, trainer.learner.params):
        assert torch.equal(p, q.detach())
    task = family().evaluation_batch(1, 123)
    learner = trainer.learner
    fast = learner.adapt(task.xs, task.ys, steps=1)  # the learner contract's adapt()
    with torch.no_grad():
        expected = learner.network.forward(fast, task.xq)[0].numpy()
    got = model.adapt(task.xs[0].numpy(), task.ys[0].numpy(), steps=1).predict(task.xq[0].numpy())
    assert (got == expected).all()


def test_a_bundle_names_the_module_it_needs_when_that_does_not_import(tmp_path, monkeypatch):
    from workbench.services.bundle import load_bundle
    from workbench.core.errors import BundleError
    from workbench.services.trainer import Trainer

    cfg = tiny_config("maml", iterations=2).replace(['model.module="usernets:SineNet"'])
    Trainer(cfg, tmp_path / "run").run()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p).resolve() != TESTS])
    monkeypatch.delitem(sys.modules, "usernets")
    with pytest.raises(BundleError, match=r"needs the module 'usernets:SineNet'") as e:
        load_bundle(tmp_path / "run")
    assert "\n" not in str(e.value)


def test_conv4_is_the_few_shot_standard():
    net = Conv4((1, 28, 28), 5)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 64, (3, 3))] + [(64, 64, (3, 3))] * 3
    assert len(norms) == 4 and not any(n.track_running_stats for n in norms)
    assert net.head.in_features == 64 and net.head.out_features == 5  # 28 -> 14 -> 7 -> 3 -> 1
    x = torch.randn(6, 1, 28, 28)
    reference = x
    for block in net.features[:4]:  # pooling before the ReLU is the same function as after it
        reference = torch.nn.functional.max_pool2d(torch.relu(block.norm(block.conv(reference))), 2)
    assert torch.allclose(net(x), net.head(reference.flatten(1)), atol=1e-5)  # another summation order


def wb(*args):
    env = dict(os.environ, PYTHONPATH=str(TESTS), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=TESTS.parent)


@pytest.mark.parametrize("preset, sets, expected", [
    ("maml-sinusoid", ['model.module="nosuchpkg.nets:Net"'], "[model] module = 'nosuchpkg.nets:Net': cannot import"),
    ("maml-sinusoid", ['model.module="usernets:NotAModule"'], "is not a torch.nn.Module subclass"),
    ("maml-sinusoid", ['model.module="usernets:SineNet"', "model.kwargs={ depth = 3 }"],
     "[model] kwargs = {'depth': 3}: usernets:SineNet"),
    ("maml-sinusoid", ['model.module="usernets:SineNet"', "model.kwargs={ outputs = 5 }"],
     "gives outputs of shape (5,) per point; the family needs 1"),
    ("anil-sinusoid", ["model.head=neck"], "[model] head = 'neck': names no submodule"),
    ("maml-sinusoid", ["model.name=conv5"], "name = 'conv5': expected one of 'mlp', 'conv4' (did you mean 'conv4'?)"),
    ("maml-sinusoid", ["model.name=conv4"], "name = 'conv4': needs image inputs"),
    ("maml-trpo-navigation", ["model.name=conv4"], "runs MLP policies"),
    ("maml-sinusoid", ['model.module="usernets:Branchy"'], "batched with torch.func.vmap"),
    ("maml-sinusoid", ['model.module="usernets:Pair"'], "forward must return a tensor (N, out_dim), got tuple"),
    ("maml-sinusoid", ['model.module="usernets:SineNet"', "model.kwargs={ d = 1979-05-27 }"], "no dates or times"),
])
def test_bad_model_input_is_one_line_with_exit_2(tmp_path, preset, sets, expected):
    args = ["train", PRESETS / f"{preset}.toml", "--iterations", 1, "--out", tmp_path / "run"]
    for s in sets:
        args += ["--set", s]
    r = wb(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("workbench: error:") and expected in last, r.stderr
    # where the bad value came from: the --set that gave it (beside the preset file when it is found bad only
    # as the run is built), or the preset file
    assert ("--set " in last and any(s.partition("=")[0] in last for s in sets)) if sets else f"{preset}.toml" in last
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_the_readme_example_of_ones_own_network_runs(tmp_path):
    text = (TESTS.parent / "README.md").read_text()
    section = text[text.index("## Your own network"):text.index("## Python API")]
    code = section.split("```python\n")[1].split("```")[0]
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 10  # the 10-line example
    (tmp_path / "mynets.py").write_text(code)
    command = section.split("```sh\n")[1].split("```")[0].strip()
    assert command.startswith("PYTHONPATH=. workbench train maml-sinusoid ")
    args = command.split("workbench ", 1)[1]
    r = subprocess.run(f"{sys.executable} -m workbench {args} --iterations 20 --out run --set run.eval_tasks=5 "
                       f"--set run.eval_interval=10", shell=True, capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env=dict(os.environ, PYTHONPATH="."))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / r.stdout.strip().splitlines()[-1]).resolve() == tmp_path / "run" / "model.safetensors"
    from workbench.core.storage import load_tensors

    _, meta = load_tensors(tmp_path / "run" / "model.safetensors")
    assert meta["model"]["module"] == "mynets:SineNet" and meta["model"]["kwargs"] == {"width": 64}


@pytest.mark.parametrize("algo, cfg, activation, loss", [
    ("maml", {"inner_steps": 1, "inner_lr": 0.05}, "relu", "mse"),
    ("maml", {"inner_steps": 3, "inner_lr": 0.05}, "tanh", "mse"),
    ("maml", {"first_order": True, "inner_steps": 2}, "relu", "mse"),
    ("metasgd", {"inner_steps": 2}, "tanh", "mse"),
    ("anil", {"inner_steps": 2, "inner_lr": 0.1}, "relu", "mse"),
    ("anil", {"inner_steps": 1, "inner_lr": 0.1}, "tanh", "mse"),
    ("maml", {"inner_steps": 2, "inner_lr": 0.5}, "tanh", "cross_entropy"),
    ("metasgd", {"inner_steps": 1}, "relu", "cross_entropy"),
])
def test_the_fused_mlps_hand_written_meta_gradient_equals_autograd(algo, cfg, activation, loss):
    """The fused MLP's meta-gradient (R-operator, no autograd) against autograd through its differentiable
    inner step, in float64: parameters and Meta-SGD's learning rates, every inner-step count."""
    g = torch.Generator().manual_seed(7)
    if loss == "mse":
        fam, spec = family(), MLPSpec(1, 1, (16, 12), activation)
        batch = double_batch(fam.sample_batch(5, g))
    else:
        class Vectors:  # 3-way classification of 4-d points
            kind, loss, metric, in_shape, out_dim = "classification", "cross_entropy", "accuracy", (4,), 3
        fam, spec = Vectors(), MLPSpec(4, 3, (16, 12), activation)
        xs, xq = torch.randn(5, 6, 4, generator=g).double(), torch.randn(5, 9, 4, generator=g).double()
        ys, yq = torch.arange(3).repeat(2).expand(5, -1), torch.arange(3).repeat(3).expand(5, -1)
        from workbench.tasks.base import TaskBatch
        batch = TaskBatch(torch.zeros(5, 1), xs, ys, xq, yq)
    learner = as_double(make(algo, FastMLP(spec), fam, **cfg))
    loss_ref, grads_ref = meta_gradient(learner, batch)
    manual = learner.network.meta_gradient(learner.params, learner.adaptation_rule(), learner.cfg.inner_steps,
                                           learner.cfg.first_order, batch)
    assert manual is not None
    value, grads, lr_grads = manual
    grads = grads + (lr_grads or [])
    assert torch.allclose(value, loss_ref.detach(), rtol=1e-12)
    assert len(grads) == len(grads_ref)
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), (a - b).abs().max()


@pytest.mark.parametrize("module", ["usernets:Unused", "usernets:Tied"])
def test_modules_with_unused_or_tied_parameters_train(module):
    from workbench.services.trainer import Trainer

    for algo in ("maml", "anil", "reptile", "pretrained"):
        cfg = tiny_config(algo, iterations=3).replace([f'model.module="{module}"'])
        trainer = Trainer(cfg)
        trainer.run()
        assert trainer.iteration == 3 and all(torch.isfinite(p).all() for p in trainer.learner.params)
    if module.endswith("Tied"):  # the shared weight is one meta-parameter
        assert trainer.learner.network.names.count("a.weight") == 1 and "b.weight" not in trainer.learner.network.names


def test_a_diverged_classifier_has_no_accuracy():
    from workbench.core import losses

    out = torch.tensor([[[1.0, 0.0], [float("nan"), 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    acc = losses.accuracy(out, torch.tensor([[0, 0], [1, 1]]))
    assert torch.isnan(acc[0]) and acc[1] == 1.0  # NaN: the divergence rule names the task, never a number
