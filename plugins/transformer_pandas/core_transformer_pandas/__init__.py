"""core-transformer-pandas: the ``pandas`` data transformer.

Rows reach the model as a ``pandas.DataFrame`` whose columns are named (by the ``columns``
setting, or by the model's ``feature_names_in_``), so scikit-learn pipelines fitted on
DataFrames (a ColumnTransformer selecting columns by name) can be served::

    data_transformer_for_predict = "pandas"
    data_transformer_for_predicted = "pandas"   # DataFrame/Series results as records/lists

Registered under the name ``pandas`` through the ``core`` entry-point group.
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "register_transformers"]


@hookimpl
def register_transformers(register: Register) -> None:
    # by path: pandas is imported when a config names the transformer, not by every command
    register("pandas", "core_transformer_pandas.transformer:PandasTransformer")
