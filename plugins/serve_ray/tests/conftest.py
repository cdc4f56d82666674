"""A local Ray (2 CPUs, 100 MB of object store, no dashboard) with Serve's proxy on a free
port of 127.0.0.1, started once for the module and shut down at its end; and the small ONNX
model the tests serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from core.testing import free_port


def onnx_model(path: Path) -> Path:
    """``Y = X @ W + 1`` for ``X`` of shape ``[batch, 3]``, ``W`` fixed: a model whose answer
    depends on every value of a row."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [2], [1.0, 1.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "one"], ["Y"])],
        "affine",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weights, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return onnx_model(tmp_path_factory.mktemp("model") / "affine.onnx")


@pytest.fixture(scope="module")
def ray_serve() -> Iterator[str]:
    """A local Ray with Serve's proxy listening on 127.0.0.1: its base URL. Ray and every
    process it started (raylet, GCS, workers) are stopped at the end."""
    import ray
    from ray import serve

    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False)
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
