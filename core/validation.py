"""Request validation: a JSON body checked against the analysed model interface.

Fast path first: rows of numbers become one numpy array in a single C call. Only when that
fails does a slow pass walk the rows to say exactly which row and field is wrong, so that a
good request pays for one conversion and a bad one gets a precise 422.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import orjson

from core.analysis import ANY_COLUMN_TYPE, COLUMN_TYPES, Argument, Column, FixedWidthRows, ModelInterface
from core.errors import InvalidRequestBody, ValidationError
from core.transformers import numpy_dtype

if TYPE_CHECKING:
    from core.components import Transformer

MAX_DETAILS = 20
#: The most dimensions a numpy array has (numpy's NPY_MAXDIMS): deeper lists are no tensor.
MAX_DEPTH = 64

Loc = list[str | int]


def _detail(loc: Loc, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; 400 naming the problem for an empty or invalid one."""
    if not body:
        raise InvalidRequestBody("the body is empty; send a JSON object", loc=["body"])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequestBody(f"invalid JSON: {error}", loc=["body"]) from None


def _no_model(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a portable validator does not call the model")


@attrs.frozen
class BodyReader:
    """A ``POST /predict`` body (JSON bytes) -> the validated values; picklable, so that a
    large body can be read in another process (:meth:`core.http.Admission.parse`), where
    holding the GIL for a long parse stalls no event loop.

    :ivar validator: the model's validator, without the model (:meth:`RequestValidator.portable`).
    :ivar transformer: the input transformer to apply to array arguments when read in another
        process (so that what comes back is arrays, quick to hand over, not millions of
        Python objects), or None to hand the values back as validated. Only set for
        core's own ``numpy`` transformer, whose ``to_model`` leaves an array of the right
        dtype as it is when the request path calls it again.
    :ivar aliases: body keys taken for another argument's name (pymlup's ``input_data`` for a
        single-input ONNX model, :mod:`core.pymlup_wire`).
    """

    validator: RequestValidator
    transformer: Transformer | None = None
    aliases: dict[str, str] = attrs.Factory(dict)

    def __call__(self, body: bytes) -> dict[str, Any]:
        """Read here: parse and validate."""
        document = parse_json(body)
        if self.aliases and isinstance(document, dict):
            document = {self.aliases.get(key, key): value for key, value in document.items()}
        return self.validator.validate(document)

    def offloaded(self, body: bytes) -> dict[str, Any]:
        """Read in another process: parse, validate, and convert the array arguments."""
        values = self(body)
        if self.transformer is not None:
            for argument in self.validator.interface.arguments:
                if argument.kind == "array" and argument.name in values:
                    # a value it cannot convert stays: the request path's transform names it
                    with contextlib.suppress(Exception):
                        values[argument.name] = self.transformer.to_model(values[argument.name], argument)
        return values


class RequestValidator:
    """Validates ``/predict`` bodies for one model interface."""

    def __init__(self, interface: ModelInterface, dtype_for_predict: str | None = None) -> None:
        self.interface = interface
        self.arguments = {a.name: a for a in interface.arguments}
        self.dtype_for_predict = dtype_for_predict

    def portable(self) -> RequestValidator:
        """This validator without the model (its interface's predict callable), to pickle."""
        return RequestValidator(attrs.evolve(self.interface, predict=_no_model), self.dtype_for_predict)

    def validate(self, body: Any) -> dict[str, Any]:
        """Return the validated values by argument name, or raise a 422 naming every problem."""
        if not isinstance(body, dict):
            raise ValidationError(
                [_detail(["body"], f"must be a JSON object with the predict arguments "
                         f"({', '.join(self.arguments)}), got {type(body).__name__}", "type_error")]
            )
        details: list[dict[str, Any]] = []
        result: dict[str, Any] = {}
        for name in body:
            if name not in self.arguments:
                details.append(
                    _detail(["body", name], f"unknown field; the model takes: {', '.join(self.arguments)}",
                            "extra_forbidden")
                )
        for arg in self.interface.arguments:
            if arg.name not in body or (body[arg.name] is None and not arg.required):
                if arg.required:
                    details.append(_detail(["body", arg.name], "field required", "missing"))
                continue
            value = body[arg.name]
            if arg.kind == "array":
                result[arg.name] = self._array(arg, value, details)
            else:
                problem = _check_scalar(arg.kind, value)
                if problem:
                    details.append(_detail(["body", arg.name], problem, "type_error"))
                else:
                    result[arg.name] = _shallow(value, ["body", arg.name], details)
        if details:
            raise ValidationError(details[:MAX_DETAILS])
        return result

    # ------------------------------------------------------------------ arrays

    def _array(self, arg: Argument, value: Any, details: list[dict[str, Any]]) -> Any:
        loc: Loc = ["body", arg.name]
        if isinstance(value, dict) and arg.tensor is None and not arg.is_rows:
            return _shallow(value, loc, details)
        if not isinstance(value, list):
            details.append(_detail(loc, f"must be a list (array), got {type(value).__name__}", "type_error"))
            return None
        if arg.is_rows and self.interface.columns:
            return self._column_rows(value, loc, details)
        if arg.fixed_width is not None:
            return _fixed_width_rows(value, arg.fixed_width, loc, details)
        tensor = arg.tensor
        if tensor is None:
            # A Python model: no declared shape. Rows must at least be consistent.
            _check_ragged(value, loc, details)
            if value and not _flat_numbers(value[0]):  # rows of numbers need no depth check
                _shallow(value, loc, details)
            return value
        try:
            array = _to_array(value, tensor.dtype)
        except (ValueError, TypeError, OverflowError, FloatingPointError):
            _explain(value, tensor.dtype, loc, details,
                     len(tensor.shape) if tensor.shape is not None else None)
            return None
        if tensor.shape is not None:
            _check_shape(array, tensor.shape, loc, details)
        return array

    def _column_rows(self, rows: list[Any], loc: Loc, details: list[dict[str, Any]]) -> list[list[Any]]:
        """Dict or list rows as lists of values in the columns' order. A list row of columns
        that all take any value (derived from the model) needs only its length checked."""
        columns = self.interface.columns or ()
        names = [c.name for c in columns]
        any_only = all(c.type == ANY_COLUMN_TYPE for c in columns)
        out = []
        for index, row in enumerate(rows):
            if len(details) >= MAX_DETAILS:
                break
            row_loc = [*loc, index]
            if isinstance(row, list):
                if len(row) != len(columns):
                    details.append(_detail(row_loc, f"expected {len(columns)} values ({', '.join(names)}), "
                                           f"got {len(row)}", "wrong_length"))
                    continue
                if any_only:
                    out.append(row)
                    continue
                row = dict(zip(names, row))
            elif not isinstance(row, dict):
                details.append(_detail(row_loc, f"must be an object with {', '.join(names)}", "type_error"))
                continue
            for key in row:
                if key not in names:
                    details.append(_detail([*row_loc, key], f"unknown column; columns: {', '.join(names)}",
                                           "extra_forbidden"))
            out.append([_column_value(c, row, row_loc, details) for c in columns])
        return out


def _column_value(column: Column, row: dict[str, Any], loc: Loc, details: list[dict[str, Any]]) -> Any:
    """The row's value for ``column``, or its default. ``null`` counts as missing, except in a
    column of type ``any``, which takes it as a value (a missing value for the model)."""
    if column.name not in row or (row[column.name] is None and column.type != ANY_COLUMN_TYPE):
        if column.required:
            details.append(_detail([*loc, column.name], "field required", "missing"))
        return column.default
    value = row[column.name]
    if column.collection_type is not None:
        _check_collection(column, value, [*loc, column.name], details)
        return value
    problem = _check_scalar(column.type, value)
    if problem:
        details.append(_detail([*loc, column.name], problem, "type_error"))
    return _shallow(value, [*loc, column.name], details)


#: Levels of nesting a JSON answer can carry (orjson's limit when it writes one).
MAX_JSON_DEPTH = 254


def _shallow(value: Any, loc: Loc, details: list[dict[str, Any]]) -> Any:
    """``value``, after a 422 when it is a list or object nested deeper than a JSON answer can
    carry (:data:`MAX_JSON_DEPTH`): a model that echoes it could not be answered. The check is
    orjson writing it, in C; scalars cost nothing."""
    if isinstance(value, (list, dict)):
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError as error:
            if "Recursion" in str(error):
                details.append(_detail(loc, f"is nested deeper than {MAX_JSON_DEPTH} levels",
                                       "too_deep"))
        except TypeError:
            pass
    return value


def _flat_numbers(row: Any) -> bool:
    """Whether ``row`` is a number or a list of numbers (the usual row: no deep nesting)."""
    if isinstance(row, (int, float)):
        return True
    return isinstance(row, list) and all(isinstance(v, (int, float)) for v in row)


def _check_collection(column: Column, value: Any, loc: Loc, details: list[dict[str, Any]]) -> None:
    """A column whose value is a list of ``column.type`` values (``collection_type``)."""
    if not isinstance(value, list):
        details.append(_detail(loc, f"must be a list of {column.type}, got {_json_type(value)}", "type_error"))
        return
    for index, item in enumerate(value):
        problem = _check_scalar(column.type, item)
        if problem:
            details.append(_detail([*loc, index], problem, "type_error"))
            return


def _fixed_width_rows(rows: list[Any], shape: FixedWidthRows, loc: Loc,
                      details: list[dict[str, Any]]) -> list[Any]:
    """Rows for a model fitted on arrays of ``shape.width`` values (``n_features_in_``): each a
    list of that many values, numbers when ``shape.numbers``. Returned unchanged. Fast path:
    rows of numbers are checked by one numpy conversion; only a bad request is walked."""
    if not rows:
        return rows
    width = shape.width
    if shape.numbers:
        try:
            probe = np.asarray(rows)
        except (ValueError, TypeError):  # ragged rows
            probe = None
        if probe is not None and probe.ndim == 2 and probe.shape[1] == width and probe.dtype.kind in "biuf":
            return rows
    elif all(type(row) is list and len(row) == width for row in rows):
        return rows if _flat_numbers(rows[0]) else _shallow(rows, loc, details)
    fitted = f"the model was fitted on {width} features (n_features_in_)"
    for index, row in enumerate(rows):
        if len(details) >= MAX_DETAILS:
            break
        row_loc = [*loc, index]
        if not isinstance(row, list):
            details.append(_detail(row_loc, f"must be a list of {width} values ({fitted}), got {_json_type(row)}",
                                   "type_error"))
        elif len(row) != width:
            details.append(_detail(row_loc, f"expected {width} values ({fitted}), got {len(row)}", "wrong_length"))
        elif shape.numbers:
            for position, item in enumerate(row):
                problem = _number_problem(item, shape.nulls)
                if problem:
                    details.append(_detail([*row_loc, position], f"{problem}, got {_json_type(item)} {item!r}"[:200],
                                           "type_error"))
                    break
    return rows


def _number_problem(item: Any, nulls: bool) -> str | None:
    """What is wrong with one value of a row of numbers, or None."""
    if item is None:
        return None if nulls else "must be a number (this model does not take missing values)"
    if isinstance(item, (int, float)):  # bools too, as numpy reads them: 1 and 0
        return None
    return "must be a number (the model takes numbers only)"


# ``np.errstate(over="raise")`` builds numpy's error state anew each time (about 1 us). numpy 2
# keeps that state in a context variable; setting it to one made once does the same in a
# fraction of the time. With a numpy without it, ``_to_array`` uses errstate.
_ERROR_STATE: Any = None
_RAISE_ON_OVERFLOW: Any = None
with contextlib.suppress(ImportError, AttributeError):
    _ufunc_config: Any = importlib.import_module("numpy._core._ufunc_config")
    # numpy's defaults, but for overflow
    _ERROR_STATE, _RAISE_ON_OVERFLOW = _ufunc_config._extobj_contextvar, _ufunc_config._make_extobj(over="raise")


def _to_array(value: list[Any], dtype: str) -> np.ndarray:
    """Convert nested lists to an array of ``dtype`` in one C call, refusing what numpy would
    change silently: a float out of the dtype's range (numpy makes it inf), a fraction for an
    integer (numpy truncates it) and anything but true/false/0/1 for a bool (numpy makes any
    non-empty string true). ``null`` in a float tensor is NaN, a missing value. Raises
    ValueError, TypeError, OverflowError or FloatingPointError; ``_explain`` then names the
    values. Only integer and bool tensors pay for a second look at the values."""
    if dtype == "string":
        return np.asarray(value, dtype=object)
    np_dtype = numpy_dtype(dtype)
    kind = np_dtype.kind
    if kind in "fc":
        if _RAISE_ON_OVERFLOW is None:
            with np.errstate(over="raise"):
                return np.asarray(value, dtype=np_dtype)
        token = _ERROR_STATE.set(_RAISE_ON_OVERFLOW)
        try:
            return np.asarray(value, dtype=np_dtype)
        finally:
            _ERROR_STATE.reset(token)
    probe = np.asarray(value)
    found = probe.dtype.kind
    if probe.size == 0:
        return probe.astype(np_dtype)
    if kind == "b":
        if found == "b" or (found in "iuf" and bool(((probe == 0) | (probe == 1)).all())):
            return probe.astype(np_dtype)
        raise ValueError("not a bool")
    if found not in "iuf":
        raise TypeError("not a number for an integer")  # bools, strings, nulls
    if found == "f":
        info = np.iinfo(np_dtype)
        if not (np.isfinite(probe).all() and (probe == np.trunc(probe)).all()
                and probe.min() >= info.min and probe.max() <= info.max):
            raise ValueError("not an integer in range")
        return probe.astype(np_dtype)
    return np.asarray(value, dtype=np_dtype)  # ints: numpy raises OverflowError out of range


def _check_scalar(kind: str, value: Any) -> str | None:
    if kind == "any":
        return None
    expected = COLUMN_TYPES.get(kind)
    if expected is None:
        return None
    if isinstance(value, bool) and kind != "bool":
        return f"must be {kind}, got bool"
    if not isinstance(value, expected):
        return f"must be {kind}, got {_json_type(value)}"
    return None


def _json_type(value: Any) -> str:
    return {
        bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _check_ragged(rows: list[Any], loc: Loc, details: list[dict[str, Any]]) -> None:
    if not rows or not isinstance(rows[0], list):
        return
    width = len(rows[0])
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            details.append(_detail([*loc, index], f"must be a list like row 0, got {_json_type(row)}", "type_error"))
        elif len(row) != width:
            details.append(_detail([*loc, index], f"expected {width} values like row 0, got {len(row)}",
                                   "wrong_length"))
        if len(details) >= MAX_DETAILS:
            return


def _check_shape(array: np.ndarray, shape: tuple[int | None, ...], loc: Loc,
                 details: list[dict[str, Any]]) -> None:
    if array.ndim != len(shape):
        if array.size == 0 and array.ndim == 1:
            return  # an empty list of rows
        details.append(_detail(loc, f"expected {len(shape)} dimension(s) of shape "
                               f"{_shape_text(shape)}, got shape {list(array.shape)}", "wrong_shape"))
        return
    for axis, (want, got) in enumerate(zip(shape, array.shape)):
        if want is not None and want != got:
            where = loc if axis == 0 else [*loc, 0]
            details.append(_detail(where, f"dimension {axis} must have {want} values "
                                   f"(shape {_shape_text(shape)}), got {got}", "wrong_length"))
            return


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("*" if d is None else str(d) for d in shape) + "]"


def _explain(value: Any, dtype: str, loc: Loc, details: list[dict[str, Any]],
             ndim: int | None = None) -> None:
    """Walk nested lists to name the first values numpy could not convert, lists nested
    deeper than the tensor's dimensions (at most numpy's :data:`MAX_DEPTH`), and ragged rows.
    Iterative: a body nested a thousand deep is a 422, never a RecursionError."""
    kind = np.dtype(dtype).kind if dtype != "string" else "O"
    before = len(details)
    deepest = ndim if ndim is not None else MAX_DEPTH
    stack: list[tuple[Any, Loc]] = [(value, loc)]
    while stack and len(details) - before < MAX_DETAILS:
        item, where = stack.pop()
        if isinstance(item, list):
            if len(where) - len(loc) >= deepest:
                details.append(_detail(where[: len(loc) + deepest],
                                       f"nested deeper than the {deepest} dimension(s) a {dtype} "
                                       f"tensor here can have", "wrong_shape"))
                break
            stack.extend((sub, [*where, i]) for i, sub in reversed(list(enumerate(item))))
            continue
        problem = _element_problem(item, dtype, kind)
        if problem:
            details.append(_detail(where, f"{problem}, got {_json_type(item)} {item!r}"[:200], "type_error"))
    if len(details) == before:
        _check_ragged(value, loc, details)
    if len(details) == before:
        details.append(_detail(loc, f"cannot be read as an array of {dtype} (rows of unequal length?)",
                               "type_error"))


def _element_problem(item: Any, dtype: str, kind: str) -> str | None:
    """What is wrong with one value for an element of ``dtype``, or None if nothing is."""
    if kind in "OSU":
        return None
    if kind == "b":
        return None if isinstance(item, bool) or item in (0, 1) else "must be true or false (bool)"
    number = isinstance(item, (int, float)) and not isinstance(item, bool)
    if kind in "fc":
        if item is None:
            return None  # null is NaN: a missing value
        if isinstance(item, str):
            try:
                float(item)  # numpy reads numeric strings, as float() does
            except ValueError:
                return f"must be a number ({dtype})"
            return None
        if not number:
            return f"must be a number ({dtype})"
        if abs(item) > float(np.finfo(dtype).max):
            return f"is out of the range of {dtype} (at most {float(np.finfo(dtype).max):g} in size)"
        return None
    if not number or (isinstance(item, float) and not item.is_integer()):
        return f"must be an integer ({dtype})"
    info = np.iinfo(dtype)
    if not info.min <= item <= info.max:
        return f"is out of the range of {dtype} ({info.min} to {info.max})"
    return None
