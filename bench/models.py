"""ONNX models for the benchmarks, built with ``onnx.helper`` from a fixed seed.

* :func:`build_mlp` writes a multi-layer perceptron: input ``X`` float32 ``[N, n_inputs]``,
  ``Gemm`` + ``Relu`` per hidden layer, then a ``Gemm`` to ``n_outputs`` logits and a
  ``Softmax``; outputs ``label`` int64 ``[N]`` and ``probabilities`` float32
  ``[N, n_outputs]``. With no hidden layers it is a linear (softmax-regression) model.
* :func:`http_bench_model`: the model of the HTTP benchmark, 20 features, one small hidden
  layer, cheap to run so that the benchmark measures the serving path, not the model.
* :func:`large_mlp_model`: 64 inputs, two hidden layers of 1024, for batching benchmarks
  (on this machine its 1-row call, ~0.1 ms, is still smaller than a request's HTTP work).
* :func:`model_bound_mlp_model`: 64 inputs, two hidden layers of 4096 (64 MB of weights, more
  than the CPU's caches): a 1-row call reads every weight from memory and takes several ms,
  a 64-row call reads them once for all rows (the model-bound benchmark).

Command line: ``python -m bench.models OUT_DIR`` writes both into ``OUT_DIR``.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

INPUT_NAME = "X"
OUTPUT_NAMES = ("label", "probabilities")
SEED = 1234


def build_mlp(
    path: str | Path,
    n_inputs: int = 20,
    hidden: Sequence[int] = (32,),
    n_outputs: int = 3,
    seed: int = SEED,
    opset: int = 17,
) -> Path:
    """Write an MLP ``n_inputs -> hidden... -> n_outputs`` (He-initialised weights) to ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    sizes = [n_inputs, *hidden, n_outputs]
    nodes, initializers = [], []
    current = INPUT_NAME
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        weight = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out)).astype(np.float32)
        bias = rng.normal(0.0, 0.01, size=fan_out).astype(np.float32)
        initializers += [
            numpy_helper.from_array(weight, f"W{layer}"),
            numpy_helper.from_array(bias, f"B{layer}"),
        ]
        last = layer == len(sizes) - 2
        out = "logits" if last else f"H{layer}"
        nodes.append(helper.make_node("Gemm", [current, f"W{layer}", f"B{layer}"], [out]))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"{out}_relu"]))
            out = f"{out}_relu"
        current = out
    nodes += [
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        f"mlp_{'x'.join(map(str, sizes))}",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_inputs])],
        outputs=[
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_outputs]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="core-bench",
        ir_version=8,
    )
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def http_bench_model(out_dir: str | Path) -> Path:
    """The HTTP benchmark's model: 20 float features -> 32 (ReLU) -> 3 classes."""
    return build_mlp(Path(out_dir) / "mlp20.onnx", n_inputs=20, hidden=(32,), n_outputs=3)


def large_mlp_model(out_dir: str | Path) -> Path:
    """64 inputs, two hidden layers of 1024, 10 classes (~4.3 MB of float32 weights)."""
    return build_mlp(
        Path(out_dir) / "mlp64_1024x2.onnx", n_inputs=64, hidden=(1024, 1024), n_outputs=10
    )


def model_bound_mlp_model(out_dir: str | Path) -> Path:
    """64 inputs, two hidden layers of 4096, 10 classes (~64 MB of float32 weights)."""
    return build_mlp(
        Path(out_dir) / "mlp64_4096x2.onnx", n_inputs=64, hidden=(4096, 4096), n_outputs=10
    )


def sample_rows(n_rows: int, n_features: int = 20, seed: int = SEED) -> list[list[float]]:
    """``n_rows`` rows of request data, rounded so that JSON bodies stay short."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(size=(n_rows, n_features)), 4).tolist()


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0] if argv else "bench/_models")
    for path in (http_bench_model(out_dir), large_mlp_model(out_dir)):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
