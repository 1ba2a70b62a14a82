"""The batched inner loop computes what the per-task textbook formulation computes."""
import pytest
import torch

from workbench.core import losses
from workbench.core.adaptation import AdaptationRule, inner_step
from workbench.models import mlp
from workbench.models.mlp import MLPSpec
from workbench.models.network import FastMLP


def problem(activation="relu", tasks=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    spec = MLPSpec(1, 1, (8, 6), activation)
    params = [p.to(dtype).requires_grad_() for p in spec.init(g)]
    x = torch.rand(tasks, 12, 1, generator=g, dtype=dtype) * 10 - 5
    y = torch.sin(x + torch.rand(tasks, 1, 1, generator=g, dtype=dtype) * 3)
    return spec, params, x[:, :5], y[:, :5], x[:, 5:], y[:, 5:]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("first_layer", [0, 1, 2])
def test_manual_support_gradient_equals_autograd(activation, first_layer):
    spec, params, xs, ys, _, _ = problem(activation)
    ours = mlp.backprop(params, xs, lambda out: losses.output_grad("mse", out, ys), activation, first_layer)[0]
    for t in range(xs.shape[0]):
        loss = losses.mse(mlp.forward(params, xs[t:t + 1], activation), ys[t:t + 1]).sum()
        ref = torch.autograd.grad(loss, params[2 * first_layer:])
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a[t], b)


def per_task_maml_gradient(params, xs, ys, xq, yq, lr, steps, first_order, activation="relu", first_layer=0):
    """The textbook loop: one task at a time, torch.autograd.grad(create_graph=True) for the inner step."""
    total = 0
    k = 2 * first_layer
    for t in range(xs.shape[0]):
        fast = list(params)
        for _ in range(steps):
            loss = losses.mse(mlp.forward(fast, xs[t:t + 1], activation), ys[t:t + 1]).sum()
            grads = torch.autograd.grad(loss, fast[k:], create_graph=not first_order)
            fast = fast[:k] + [p - lr * g for p, g in zip(fast[k:], grads)]
        total = total + losses.mse(mlp.forward(fast, xq[t:t + 1], activation), yq[t:t + 1]).sum()
    return torch.autograd.grad(total / xs.shape[0], params)


def batched_maml_gradient(params, xs, ys, xq, yq, lr, steps, first_order, activation="relu", first_layer=0):
    spec = MLPSpec(1, 1, tuple(p.shape[-1] for p in params[0:-2:2]), activation)
    rule = AdaptationRule([lr] * (len(params) - 2 * first_layer), 2 * first_layer, steps, "mse")
    fast = params
    for _ in range(steps):
        fast = inner_step(FastMLP(spec), fast, rule, xs, ys, create_graph=not first_order)
    loss = losses.mse(mlp.forward(fast, xq, activation), yq).mean()
    return torch.autograd.grad(loss, params)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("first_order", [False, True])
def test_vectorized_maml_gradient_equals_per_task_reference(activation, steps, first_order):
    spec, params, xs, ys, xq, yq = problem(activation)
    ours = batched_maml_gradient(params, xs, ys, xq, yq, 0.1, steps, first_order, activation)
    ref = per_task_maml_gradient(params, xs, ys, xq, yq, 0.1, steps, first_order, activation)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_anil_gradient_equals_reference():
    spec, params, xs, ys, xq, yq = problem("relu")
    ours = batched_maml_gradient(params, xs, ys, xq, yq, 0.1, 2, False, first_layer=2)
    ref = per_task_maml_gradient(params, xs, ys, xq, yq, 0.1, 2, False, first_layer=2)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_second_order_differs_from_first_order(activation):
    spec, params, xs, ys, xq, yq = problem(activation)
    so = batched_maml_gradient(params, xs, ys, xq, yq, 0.1, 1, False, activation)
    fo = batched_maml_gradient(params, xs, ys, xq, yq, 0.1, 1, True, activation)
    diff = max((a - b).abs().max().item() for a, b in zip(so, fo))
    assert diff > 1e-4


def test_meta_sgd_learning_rates_receive_gradient():
    spec, params, xs, ys, xq, yq = problem("relu")
    lrs = [torch.full_like(p, 0.05).requires_grad_() for p in params]
    rule = AdaptationRule(lrs, 0, 1, "mse")
    fast = inner_step(FastMLP(MLPSpec(1, 1, (8, 6), "relu")), params, rule, xs, ys, create_graph=True)
    loss = losses.mse(mlp.forward(fast, xq), yq).mean()
    grads = torch.autograd.grad(loss, lrs)
    # reference: d loss / d lr = -<grad_query(θ'), grad_support(θ)> per entry, summed over tasks / B
    support = mlp.backprop(params, xs, lambda out: losses.output_grad("mse", out, ys))[0]
    fast_d = [f.detach().requires_grad_() for f in fast]
    q = torch.autograd.grad(losses.mse(mlp.forward(fast_d, xq), yq).mean(), fast_d)
    for g, s, qq in zip(grads, support, q):
        torch.testing.assert_close(g, -(s * qq).sum(0))
