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
