"""The models of pymlup's own tests (its tests/conftest.py), for the compatibility suite:
importable by dotted path, so that they pickle and a served config can name them."""

from __future__ import annotations

from typing import Any


class TestModel:
    __test__ = False  # not a pytest test class

    def run_predict(self, X: list[Any], test_param: bool = False, *custom_args: Any, **custom_kwargs: Any) -> Any:
        return None

    def predict(self, X: list[Any], test_param: bool = False, *custom_args: Any, **custom_kwargs: Any) -> Any:
        return self.run_predict(X, test_param, *custom_args, **custom_kwargs)


class PrintModel(TestModel):
    """Returns its rows (pymlup's ``print_model``)."""

    def run_predict(self, X: list[Any], test_param: bool = False, *custom_args: Any, **custom_kwargs: Any) -> Any:
        return X


class ModelWithX:
    def predict(self, X: list[Any]) -> Any:
        return X


class WidthModel:
    """A model that, like a scikit-learn estimator fitted on arrays, knows only its width."""

    n_features_in_ = 3

    def predict(self, X: Any) -> Any:
        return [sum(row) for row in X]


#: Instances for configs that import a model object by name (``pymlup_models:print_model``).
print_model = PrintModel()
model_with_x = ModelWithX()
