"""Regenerate the example models shipped in examples/: deterministic (fixed seed).

    python examples/build_models.py

writes

* ``examples/onnx/model.onnx``: a linear classifier 20 -> 3 with softmax, built with
  ``onnx.helper``. Input ``X`` float32 ``[N, 20]``; outputs ``label`` int64 ``[N]`` (ArgMax)
  and ``probabilities`` float32 ``[N, 3]``.
* ``examples/pickle/model.pkl``: a cloudpickle (protocol 5) of :class:`IrisLikeClassifier`.
  The class is defined here, in ``__main__``, so cloudpickle stores it by value: loading the
  file needs only numpy and cloudpickle, not this script.

Both models are trained by the same few hundred steps of gradient descent on synthetic data
(three Gaussian blobs in 20 dimensions), so they are real, if small, classifiers. Needs numpy,
onnx and cloudpickle.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20240101
N_FEATURES = 20
CLASSES = ("setosa", "versicolor", "virginica")
N_CLASSES = len(CLASSES)


# ---------------------------------------------------------------------- data and training


def make_data(n_per_class: int = 200, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 20 dimensions: features float32 [N, 20], labels int64 [N]."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 0.5, size=(N_CLASSES, N_FEATURES))
    X = np.concatenate([rng.normal(c, 1.0, size=(n_per_class, N_FEATURES)) for c in centres])
    y = np.repeat(np.arange(N_CLASSES), n_per_class)
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.int64)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_softmax_regression(
    X: np.ndarray, y: np.ndarray, steps: int = 300, lr: float = 0.1, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch gradient descent: W [20, 3], b [3]."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, 0.01, size=(X.shape[1], N_CLASSES))
    b = np.zeros(N_CLASSES)
    onehot = np.eye(N_CLASSES)[y]
    Xd = X.astype(np.float64)
    for _ in range(steps):
        grad = (softmax(Xd @ W + b) - onehot) / len(y)
        W -= lr * (Xd.T @ grad)
        b -= lr * grad.sum(axis=0)
    return W.astype(np.float32), b.astype(np.float32)


# ---------------------------------------------------------------------- pickle model


class IrisLikeClassifier:
    """A tiny softmax-regression classifier over 20 float features, with numpy weights.

    ``predict(X)`` returns int class labels (0, 1, 2); ``predict_proba(X)`` the class
    probabilities; ``classes_`` the class names.
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray, classes: tuple[str, ...]) -> None:
        self.weights = weights
        self.bias = bias
        self.classes_ = list(classes)

    def predict_proba(self, X):
        logits = np.asarray(X, dtype=np.float32) @ self.weights + self.bias
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)


def make_reproducible(cls: type) -> None:
    """Make cloudpickle's by-value copy of ``cls`` the same bytes on every run and checkout.

    cloudpickle tags a class pickled by value with a random tracker id, and its methods'
    code with this file's absolute path: pin the first, and make the second relative.
    """
    import cloudpickle.cloudpickle as cp

    for attr in vars(cls).values():
        if callable(attr) and hasattr(attr, "__code__"):
            attr.__code__ = attr.__code__.replace(co_filename="examples/build_models.py")
    tracker_id = f"core-examples-{cls.__name__}"
    by_class = getattr(cp, "_DYNAMIC_CLASS_TRACKER_BY_CLASS", None)
    by_id = getattr(cp, "_DYNAMIC_CLASS_TRACKER_BY_ID", None)
    if by_class is not None and by_id is not None:  # private: skip if cloudpickle changes it
        by_class[cls] = tracker_id
        by_id[tracker_id] = cls


def build_pickle(path: Path, W: np.ndarray, b: np.ndarray) -> IrisLikeClassifier:
    import cloudpickle

    make_reproducible(IrisLikeClassifier)
    model = IrisLikeClassifier(W, b, CLASSES)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cloudpickle.dumps(model, protocol=5))
    return model


# ---------------------------------------------------------------------- onnx model


def build_onnx(path: Path, W: np.ndarray, b: np.ndarray) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes=[
            helper.make_node("Gemm", ["X", "W", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        name="iris_like_classifier",
        inputs=[helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, N_FEATURES])],
        outputs=[
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, N_CLASSES]),
        ],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="core-examples",
        ir_version=8,  # readable by any onnxruntime >= 1.10
    )
    model.doc_string = "20 float features -> 3 classes (softmax regression on synthetic data)"
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


# ---------------------------------------------------------------------- checks and main


def check(onnx_path: Path, pkl_path: Path, X: np.ndarray, y: np.ndarray) -> None:
    """Reload both files and show that they agree with each other and with the labels."""
    import cloudpickle

    model = cloudpickle.loads(pkl_path.read_bytes())
    pkl_labels = model.predict(X)
    print(f"{pkl_path.relative_to(HERE.parent)}: {pkl_path.stat().st_size} bytes, "
          f"training accuracy {np.mean(pkl_labels == y):.3f}")
    try:
        import onnxruntime as ort
    except ImportError:
        print(f"{onnx_path.relative_to(HERE.parent)}: written (no onnxruntime to check it)")
        return
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_labels, _ = session.run(None, {"X": X})
    print(f"{onnx_path.relative_to(HERE.parent)}: {onnx_path.stat().st_size} bytes, "
          f"training accuracy {np.mean(onnx_labels == y):.3f}, "
          f"agrees with the pickle on {np.mean(onnx_labels == pkl_labels):.3f} of rows")


def main() -> int:
    X, y = make_data()
    W, b = train_softmax_regression(X, y)
    onnx_path = HERE / "onnx" / "model.onnx"
    pkl_path = HERE / "pickle" / "model.pkl"
    build_onnx(onnx_path, W, b)
    build_pickle(pkl_path, W, b)
    check(onnx_path, pkl_path, X, y)
    print("first row, for a request:", [round(float(v), 2) for v in X[0]])
    return 0


if __name__ == "__main__":
    # pickle by value: cloudpickle only does so for classes it finds in __main__.
    assert IrisLikeClassifier.__module__ == "__main__", "run this file as a script"
    sys.exit(main())
