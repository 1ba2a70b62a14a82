"""Write the meta-learned network (its initial, unadapted weights) as a standalone ONNX model.

The graph is plain MatMul / Add / Relu|Tanh, input ``x`` of shape (N, in), output ``y`` (N, out), so any
ONNX runtime can run it without the workbench.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.core.errors import WorkbenchError
from workbench.core.storage import atomic_write_bytes


def write_onnx(path: str | Path, weights: list[np.ndarray], spec) -> Path:
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise WorkbenchError("ONNX export needs the 'onnx' package: pip install 'workbench[onnx]'") from None
    nodes, inits = [], []
    h = "x"
    n = spec.n_layers
    for i in range(n):
        w, b = weights[2 * i], weights[2 * i + 1]
        inits += [numpy_helper.from_array(np.ascontiguousarray(w, np.float32), f"layer{i}.weight"),
                  numpy_helper.from_array(np.ascontiguousarray(b, np.float32), f"layer{i}.bias")]
        nodes.append(helper.make_node("MatMul", [h, f"layer{i}.weight"], [f"mm{i}"]))
        out = "y" if i == n - 1 else f"z{i}"
        nodes.append(helper.make_node("Add", [f"mm{i}", f"layer{i}.bias"], [out]))
        if i < n - 1:
            op = "Relu" if spec.activation == "relu" else "Tanh"
            nodes.append(helper.make_node(op, [out], [f"h{i}"]))
            h = f"h{i}"
    graph = helper.make_graph(
        nodes, "workbench_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", spec.in_dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", spec.out_dim])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="workbench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    atomic_write_bytes(path, model.SerializeToString())
    return Path(path)


def _norm_module(bn):
    """Batch norm ``bn`` on the statistics of the batch it is given (the workbench's: every task is
    normalised with its own), as plain ops that an ONNX graph with a dynamic batch size holds."""
    import torch
    from torch import nn

    class BatchStatsNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight, self.bias, self.eps = bn.weight, bn.bias, float(bn.eps)

        def forward(self, x):
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dims, keepdim=True)
            var = (x - mean).pow(2).mean(dims, keepdim=True)
            y = (x - mean) / torch.sqrt(var + self.eps)
            if self.weight is None:
                return y
            shape = [1, -1] + [1] * (x.dim() - 2)
            return y * self.weight.view(shape) + self.bias.view(shape)

    return BatchStatsNorm()


def _swap_batch_norms(module) -> None:
    from torch import nn

    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, _norm_module(child))
        else:
            _swap_batch_norms(child)


def _one_task(network, params):
    """``network`` (a workbench Network) with ``params`` as a module of one task's inputs (N, *in_shape)."""
    import torch

    class OneTask(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.params = torch.nn.ParameterList([torch.nn.Parameter(p.detach().float().clone()) for p in params])

        def forward(self, x):
            return network.forward(list(self.params), x.unsqueeze(0))[0]

    return OneTask()


def write_network_onnx(path: str | Path, network, params: list, prototypes=None) -> Path:
    """Write ``network`` (a workbench Network: the fused MLP, or any module run functionally) with the
    parameters ``params`` (one task's, unbatched) as an ONNX model: input ``x`` (N, *in_shape) float32,
    output ``y`` (N, out_dim).  ``prototypes`` (ways, D): the network is an embedding and ``y`` is the
    negative squared distance of each embedding to each prototype (N, ways), a Prototypical Network's
    logits.  Batch norm normalises over the N inputs given together, as the workbench does for one task.
    Raises WorkbenchError when the module cannot be traced to ONNX."""
    import copy
    import io
    import warnings

    import torch

    from workbench.core.adaptation import distance_logits

    spec = getattr(network, "spec", None)
    if spec is not None and prototypes is None:
        return write_onnx(path, [p.detach().cpu().numpy() for p in params], spec)
    if spec is not None:  # an embedding MLP with prototypes: its own forward, as a module
        module = _one_task(network, params)
        names = []
    else:
        module = copy.deepcopy(network.module)
        names = list(network.names)
    with torch.no_grad():
        named = dict(module.named_parameters())
        for n, p in zip(names, params):
            named[n].copy_(p.detach().to(named[n].dtype).reshape(named[n].shape))
    _swap_batch_norms(module)
    module = module.eval()
    if prototypes is not None:
        protos = prototypes.detach().float()

        class WithPrototypes(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.body = module
                self.register_buffer("prototypes", protos)

            def forward(self, x):  # the workbench's own logits of a prototype classifier
                return distance_logits(self.body(x).unsqueeze(0), self.prototypes.unsqueeze(0))[0]

        module = WithPrototypes().eval()
    x = torch.zeros(2, *network.in_shape)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=17)
    except Exception as e:  # noqa: BLE001 - a user's module torch cannot trace: one line
        raise WorkbenchError(f"{path}: this network cannot be written as ONNX ({type(e).__name__}: "
                             f"{e})".replace("\n", " ")) from None
    data = buf.getvalue()
    if _batch_norms(network):  # said in the file: a deployment must not feed a task's inputs one at a time
        import onnx

        model = onnx.load_from_string(data)
        model.doc_string = ("Batch norm normalises over the N inputs given together (the workbench's per-task "
                            "statistics): give a task's inputs together, not one at a time.")
        data = model.SerializeToString()
    atomic_write_bytes(path, data)
    return Path(path)


def _batch_norms(network) -> list:
    from torch import nn

    module = getattr(network, "module", None)
    return [] if module is None else [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class _QuietPreprocessAdvice:
    """A logging filter: onnxruntime's advice to pre-process a model before quantising it (for large vision
    models) is not the user's business here."""

    @staticmethod
    def filter(record) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """An int8 copy of the ONNX model ``src`` at ``dst``: onnxruntime's dynamic quantisation (weights of
    MatMul / Gemm / Conv as int8 with per-tensor scales, activations quantised on the fly), written whole
    or not at all."""
    import logging
    import os
    import threading

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise WorkbenchError("int8 quantisation needs onnxruntime: pip install 'workbench[onnx]'") from None
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.stem}.tmp{os.getpid()}-{threading.get_ident()}.onnx")
    root = logging.getLogger()
    quiet = _QuietPreprocessAdvice()
    root.addFilter(quiet)
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, dst)
    finally:
        root.removeFilter(quiet)
        if tmp.exists():
            tmp.unlink()
    return dst


def onnx_runner(path: str | Path):
    """A function x (N, ...) float32 -> the outputs of the ONNX model at ``path`` (one onnxruntime session on
    the CPU, made once)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]


def run_onnx(path: str | Path, x) -> "np.ndarray":
    """The outputs of the ONNX model at ``path`` on ``x`` (N, ...) float32, by onnxruntime on the CPU."""
    return onnx_runner(path)(x)
