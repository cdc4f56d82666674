"""The ``pandas`` transformer: rows become a DataFrame with named, typed columns; DataFrames,
Series and pandas missing values in the model's result become JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from core.analysis import Argument, Column
from core.components import Transformer
from core.errors import ConfigError, PredictTransformDataError
from core.transformers import to_jsonable

#: The dtype of a column of each ``columns`` type when every value is there. A type not
#: listed (``str``, ``list``, ``dict``, and ``any`` for columns derived from the model) is left
#: to pandas, which infers it as ``pd.DataFrame(records)`` does (``str``: pandas' default
#: string dtype, ``object`` before pandas 3).
DTYPES: dict[str, str] = {"int": "int64", "float": "float64", "bool": "bool"}
#: The dtype when one of the values is missing (``None``), the way ``pandas.read_csv`` reads
#: such a column: an int column becomes float64 with NaN, a bool column objects with None.
DTYPES_WITH_MISSING: dict[str, str] = {"int": "float64", "float": "float64", "bool": "object"}

_CONVERSION_ERRORS = (ValueError, TypeError, OverflowError)


class PandasTransformer(Transformer):
    """Rows in as a ``pandas.DataFrame``; DataFrames, Series and arrays out as JSON.

    The rows argument becomes a DataFrame whose columns are the analysed columns (the
    ``columns`` setting, or the model's ``feature_names_in_``), typed by :data:`DTYPES` and
    :data:`DTYPES_WITH_MISSING`; without columns, dict rows give the dicts' keys and list
    rows the column names 0, 1, ... ``dtype`` (``dtype_for_predict``) is then applied to the
    whole frame. A value that cannot be converted is a 422 naming its row and column. Other
    arguments pass through unchanged.
    """

    def __init__(self, dtype: str | None = None) -> None:
        if dtype is not None:
            try:
                pd.api.types.pandas_dtype(dtype)
            except TypeError:
                raise ConfigError(f"dtype_for_predict {dtype!r} is not a pandas dtype") from None
        self.dtype = dtype

    def to_model(self, data: Any, argument: Argument) -> Any:
        if not argument.is_rows:
            return data
        if isinstance(data, pd.DataFrame):
            frame = data
        elif argument.columns and isinstance(data, list):  # validated rows
            frame = typed_frame(data, argument.columns, argument.name)
        elif argument.columns:  # an array that skipped validation (V2 tensors): names only
            frame = pd.DataFrame(data, columns=[c.name for c in argument.columns])
        else:
            frame = pd.DataFrame(data)
        if self.dtype is not None:
            frame = _astype(frame, self.dtype, argument.name)
        return frame

    def from_model(self, data: Any) -> Any:
        return to_jsonable(plain_pandas(data))


def typed_frame(
    rows: Sequence[Sequence[Any]], columns: Sequence[Column], name: str
) -> pd.DataFrame:
    """Validated rows (lists of values in the columns' order) as a DataFrame, typed column
    by column; ``name`` is the rows argument's, for the error's ``loc``."""
    for index, row in enumerate(rows):
        if len(row) != len(columns):
            raise PredictTransformDataError(
                f"expected {len(columns)} values ({', '.join(c.name for c in columns)}), "
                f"got {len(row)}", loc=["body", name, index],
            )
    by_column = list(zip(*rows)) if rows else [() for _ in columns]
    data = {}
    for column, values in zip(columns, by_column):
        dtype = column_dtype(column, values)
        try:
            data[column.name] = pd.Series(values, dtype=dtype)
        except _CONVERSION_ERRORS:
            def convert(value: Any, kind: str | None = dtype) -> Any:
                return pd.Series([value], dtype=kind)

            raise _cell_error(values, convert, dtype, name, column.name) from None
    return pd.DataFrame(data)


def column_dtype(column: Column, values: Sequence[Any]) -> str | None:
    """The dtype of ``column`` holding ``values``; None: pandas infers it (objects for a
    column of lists, ``collection_type``)."""
    if column.type not in DTYPES or column.collection_type is not None:
        return None
    if any(value is None for value in values):
        return DTYPES_WITH_MISSING[column.type]
    return DTYPES[column.type]


def _astype(frame: pd.DataFrame, dtype: str, name: str) -> pd.DataFrame:
    try:
        return frame.astype(dtype)
    except _CONVERSION_ERRORS as error:
        for label in frame.columns:
            series = frame[label]
            try:
                series.astype(dtype)
            except _CONVERSION_ERRORS:
                def convert(value: Any, kind: Any = series.dtype) -> Any:
                    return pd.Series([value], dtype=kind).astype(dtype)

                raise _cell_error(series.tolist(), convert, dtype, name, label) from None
        raise PredictTransformDataError(
            f"the rows cannot be converted to {dtype} (dtype_for_predict): {error}",
            loc=["body", name],
        ) from None


def _cell_error(values: Sequence[Any], convert: Callable[[Any], Any], dtype: str | None,
                name: str, label: Any) -> PredictTransformDataError:
    """The 422 naming the first of ``values`` (a column's) that ``convert`` refuses."""
    where = label if isinstance(label, (str, int)) else str(label)
    for row, value in enumerate(values):
        try:
            convert(value)
        except _CONVERSION_ERRORS as error:
            return PredictTransformDataError(
                f"{value!r} cannot be converted to {dtype}: {error}"[:300],
                loc=["body", name, row, where],
            )
    return PredictTransformDataError(f"column {where!r} cannot be converted to {dtype}",
                                     loc=["body", name])


def plain_pandas(data: Any) -> Any:
    """``data`` with its pandas objects made plain: a DataFrame becomes a list of records
    (``{column: value}``), a Series or Index a list; NaN, NaT and ``pd.NA`` become None, a
    Timestamp or Timedelta its ISO text. Dicts, lists and tuples are walked; everything else
    (numpy arrays and scalars, numbers) is left to :func:`core.transformers.to_jsonable`."""
    if isinstance(data, pd.DataFrame):
        frame = _objects(data)
        for label, dtype in data.dtypes.items():
            if dtype.kind in "OMm":
                frame[label] = frame[label].map(_scalar)
        return frame.to_dict(orient="records")
    if isinstance(data, (pd.Series, pd.Index)):
        series = _objects(pd.Series(data))
        return (series.map(_scalar) if data.dtype.kind in "OMm" else series).tolist()
    if isinstance(data, dict):
        return {key: plain_pandas(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [plain_pandas(value) for value in data]
    return _scalar(data)


def _objects(data: Any) -> Any:
    """A DataFrame or Series as objects, with None for every missing value."""
    return data.astype(object).where(data.notna(), None)


def _scalar(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, pd.Timedelta)):
        return value.isoformat()
    return value
