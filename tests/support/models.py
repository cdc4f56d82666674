"""Small Python models served by the tests."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

import numpy as np

from core.analysis import Tensor


class SumModel:
    """Row sums, with an optional scale and an offset."""

    def predict(self, X: Any, scale: float = 1.0, offset: int = 0) -> Any:
        return np.asarray(X, dtype=np.float64).sum(axis=1) * scale + offset


class ColumnsModel:
    def predict(self, X: Any) -> Any:
        return [list(map(str, row)) for row in np.asarray(X, dtype=object).tolist()]


class ShapesModel:
    """Returns every kind of value a model returns, chosen by ``kind``."""

    def predict(self, X: Any, kind: str = "array") -> Any:
        x = np.asarray(X, dtype=np.float64)
        return {
            "array": x,
            "scalar": np.float32(x.sum()),
            "int": np.int64(len(x)),
            "list": [np.float64(v) for v in x.sum(axis=1)],
            "dict": {"sum": x.sum(axis=1), "n": len(x), "labels": np.array(["a"] * len(x))},
            "tuple": (x.sum(axis=1), x.mean(axis=1)),
            "plain": "hello",
            "none": None,
            "nan": np.array([np.nan, 1.0]),
            "object": np.array([{"a": 1}], dtype=object),
            "float16": x.astype(np.float16),
            "transposed": x.T,
        }[kind]


class TensorModel:
    """Declares its tensors as an ONNX model does; echoes them with their dtypes."""

    def predict(
        self,
        X: Annotated[Any, Tensor("float32", (None, 2))],
        ids: Annotated[Any, Tensor("int64", (None,))],
        flags: Annotated[Any, Tensor("bool", (None,))],
        small: Annotated[Any, Tensor("uint8", (None,))],
    ) -> Any:
        return {name: {"dtype": str(value.dtype), "values": value}
                for name, value in (("X", X), ("ids", ids), ("flags", flags), ("small", small))}


class FeaturesModel:
    """A model fitted on a DataFrame, as scikit-learn records it: ``feature_names_in_``."""

    feature_names_in_ = np.array(["b", "a"], dtype=object)

    def predict(self, X: Any) -> Any:
        return np.asarray(X, dtype=np.float64)


class FailingModel:
    def predict(self, X: Any) -> Any:
        raise ValueError("the model does not like these rows")


class SlowModel:
    """Sleeps ``seconds`` per call; counts calls running at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def predict(self, X: Any, seconds: float = 0.5) -> Any:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
        return [self.peak] * len(X)


sum_model = SumModel()
columns_model = ColumnsModel()
features_model = FeaturesModel()
shapes_model = ShapesModel()
failing_model = FailingModel()
tensor_model = TensorModel()
slow_model = SlowModel()


class EchoModel:
    """Returns its rows as it got them, inside ``wrap`` more lists."""

    def predict(self, X: Any, wrap: int = 0) -> Any:
        for _ in range(wrap):
            X = [X]
        return X


echo_model = EchoModel()


class TrackedModel:
    """Answers, for each row, how many objects the garbage collector tracks in the serving
    process (what a full collection walks), after one such collection."""

    def predict(self, X: Any) -> Any:
        import gc

        gc.collect()
        return [len(gc.get_objects()) for _ in X]


tracked_model = TrackedModel()
