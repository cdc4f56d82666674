"""Model analysis: find the predict method and turn its signature into request arguments.

A Python model's ``predict(self, X, threshold: float = 0.5)`` becomes two arguments: the rows
argument ``X`` (an array) and ``threshold`` (a float, default 0.5). A binarizer that wraps a
model with a fixed input schema (ONNX) gives its predict function a ``__signature__`` whose
annotations are :class:`Tensor` objects, so the same analysis reads names, dtypes and shapes.

The rows' fields come from the ``columns`` setting or, when it is not set, from the model's
``feature_names_in_`` (what scikit-learn estimators and pipelines fitted on a pandas
DataFrame record): dict rows are then validated field by field and put in the model's order.
A model fitted on plain arrays records only its width, ``n_features_in_``: each row must then
be a list of that many values, numbers when the model's scikit-learn tags say it takes only
numbers (:func:`fixed_width_rows`).
"""

from __future__ import annotations

import inspect
import logging
import numbers
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from core.errors import ConfigError, ModelAnalysisError

logger = logging.getLogger("core")

#: The rows argument's name when ``auto_detect_predict_params`` is off (pymlup's name).
DEFAULT_X_ARG_NAME = "data_for_predict"

COLUMN_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (float, int),
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
}


#: :attr:`Tensor.kind` of an array of ``dtype`` and ``shape``.
TENSOR = "tensor"
#: :attr:`Tensor.kind` of a sequence holding one mapping ``{key: value}`` per row, keys of
#: ``key_dtype`` and values of ``dtype``: what a classifier exported by skl2onnx with its
#: default options (ZipMap) returns as probabilities, ``[{"a": 0.9, "b": 0.1}, ...]``.
SEQUENCE_OF_MAPS = "sequence_of_maps"
TENSOR_KINDS = (TENSOR, SEQUENCE_OF_MAPS)


def _check_kind(instance: Tensor, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in TENSOR_KINDS:
        raise ValueError(f"Tensor kind must be one of {', '.join(TENSOR_KINDS)}, got {value!r}")


def _check_key_dtype(instance: Tensor, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if (value is None) != (instance.kind != SEQUENCE_OF_MAPS):
        raise ValueError(f"Tensor key_dtype is set exactly when kind is {SEQUENCE_OF_MAPS!r}")


@attrs.frozen
class Tensor:
    """What a model declares about one of its inputs or outputs (see "Describing a model's
    tensors" in docs/plugins.md).

    As a predict parameter's annotation it declares an array argument; in :class:`Outputs`
    (the predict function's return annotation) one output.

    :ivar dtype: the element type, as numpy names it (``float32``, ``int64``, ``bool``...)
        or ``string`` for text.
    :ivar shape: one entry per dimension, ``None`` for a dimension of any size (the rows);
        ``None`` when even the rank is unknown.
    :ivar name: the model's own name for an input, when it differs from the Python argument
        name (the ONNX input ``input:0`` is the argument ``input_0``): protocols that speak
        the model's names (V2) show and accept this one. ``None``: the argument's name.
    :ivar kind: :data:`TENSOR` (an array of ``dtype`` and ``shape``, the default) or
        :data:`SEQUENCE_OF_MAPS` (one mapping per row, values of ``dtype``, keys of
        ``key_dtype``; ``shape`` is then the sequence's, ``(None,)``).
    :ivar key_dtype: the keys' type of a :data:`SEQUENCE_OF_MAPS` (``string`` or ``int64``);
        ``None`` for a :data:`TENSOR`.
    """

    dtype: str = "float32"
    shape: tuple[int | None, ...] | None = None
    name: str | None = attrs.field(default=None, kw_only=True)
    kind: str = attrs.field(default=TENSOR, kw_only=True, validator=_check_kind)
    key_dtype: str | None = attrs.field(default=None, kw_only=True, validator=_check_key_dtype)


def _output_items(value: Any) -> tuple[tuple[str, Tensor], ...]:
    """``Outputs``' argument (a mapping or pairs, in order) as checked ``(name, Tensor)`` pairs."""
    pairs = list(value.items()) if isinstance(value, Mapping) else list(value)
    if not pairs:
        raise ValueError("Outputs needs at least one output")
    seen: set[str] = set()
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"Outputs takes a mapping of name -> core.Tensor, got {pair!r}")
        name, tensor = pair
        if not isinstance(name, str) or not name:
            raise TypeError(f"an output's name must be a non-empty string, got {name!r}")
        if name in seen:
            raise ValueError(f"output {name!r} is declared twice")
        if not isinstance(tensor, Tensor):
            raise TypeError(f"output {name!r} must be a core.Tensor, got {type(tensor).__name__}")
        seen.add(name)
    return tuple(pairs)


@attrs.frozen(repr=False)
class Outputs(Mapping[str, Tensor]):
    """What a predict function returns, declared as its return annotation: an ordered
    mapping of output name -> :class:`Tensor`::

        def predict(self, X: core.Tensor("float32", (None, 4))) -> core.Outputs({
            "label": core.Tensor("int64", (None,)),
            "probabilities": core.Tensor("float32", (None, 3)),
        }): ...

    The function then returns a dict with those keys (or, for several outputs, a tuple in
    that order; for one output, the value itself). Analysis puts it in
    :attr:`ModelInterface.outputs`, where protocols (V2 metadata and inference) read it. A
    return annotation that is a single :class:`Tensor` declares one output named after the
    predict method.
    """

    _items: tuple[tuple[str, Tensor], ...] = attrs.field(converter=_output_items)

    def __getitem__(self, name: str) -> Tensor:
        for key, tensor in self._items:
            if key == name:
                return tensor
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Outputs({dict(self._items)!r})"


#: The type of a column derived from the model's ``feature_names_in_``: any JSON value,
#: ``null`` included (a missing value), is accepted; the model checks it.
ANY_COLUMN_TYPE = "any"


@attrs.frozen
class Column:
    """One field of a dict row, from the ``columns`` setting or the model's ``feature_names_in_``.

    :ivar type: one of :data:`COLUMN_TYPES`, or ``"any"`` for a column derived from the model
        (see :func:`columns_from_model`).
    """

    name: str
    type: str = "float"
    required: bool = True
    default: Any = None
    #: ``"list"`` when the column's value is a list of ``type`` values (pymlup's
    #: ``collection_type: List``); None for a single value.
    collection_type: str | None = None


#: The values of a column's ``collection_type`` (pymlup writes ``List``; case is ignored).
COLLECTION_TYPES = ("list",)


@attrs.frozen
class FixedWidthRows:
    """The rows of a model fitted on arrays of a known width (scikit-learn's ``n_features_in_``).

    :ivar width: the values in each row.
    :ivar numbers: each value must be a number (the model's tags say it takes nothing else).
    :ivar nulls: with ``numbers``, ``null`` is accepted as a missing value (NaN): the model's
        tags say it handles NaN.
    """

    width: int
    numbers: bool = False
    nulls: bool = True


@attrs.frozen
class Argument:
    """One argument of the predict method, as the request schema sees it.

    :ivar kind: ``"array"`` for row/tensor arguments; else the scalar type name
        (``int``, ``float``, ``str``, ``bool``, ``list``, ``dict``) or ``"any"``.
    :ivar is_rows: the rows argument (``X`` or the first one): counted by
        ``throttling_max_request_len`` and merged by batching.
    :ivar columns: for the rows argument, the fields of a row when they are known (the
        ``columns`` setting, or the model's ``feature_names_in_``), in the order validation
        puts each row's values; ``None`` otherwise. A transformer that builds named columns
        (a pandas DataFrame) reads the names and types here.
    :ivar fixed_width: for the rows argument of a model that records only its width
        (``n_features_in_``, no column names), what each row must hold; ``None`` otherwise.
    """

    name: str
    kind: str = "any"
    required: bool = True
    default: Any = None
    is_rows: bool = False
    tensor: Tensor | None = None
    positional: bool = False
    columns: tuple[Column, ...] | None = None
    fixed_width: FixedWidthRows | None = None


@attrs.frozen
class ModelInterface:
    """What analysis found: the callable to run, the arguments it takes and, when the
    predict function declares them (its return annotation), the outputs it gives."""

    predict: Callable[..., Any]
    arguments: tuple[Argument, ...]
    columns: tuple[Column, ...] | None = None
    #: The declared outputs (:class:`Outputs`), or None when the model declares none.
    outputs: Outputs | None = None
    #: The rows argument (``X`` or the first one), or None; computed once.
    rows: Argument | None = attrs.field(init=False, eq=False, repr=False)
    _positional: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "rows", next((a for a in self.arguments if a.is_rows), None))
        object.__setattr__(
            self, "_positional", tuple(a.name for a in self.arguments if a.positional)
        )

    def call(self, values: dict[str, Any]) -> Any:
        """Call the predict method with the (transformed) argument values: positional-only
        parameters by position, every other one by name."""
        if not self._positional:
            return self.predict(**values)
        kwargs = dict(values)
        args = [kwargs.pop(name) for name in self._positional if name in kwargs]
        return self.predict(*args, **kwargs)


def parse_columns(columns: list[Any]) -> tuple[Column, ...]:
    """Check the ``columns`` setting and turn it into :class:`Column` objects."""
    result = []
    seen = set()
    for index, column in enumerate(columns):
        where = f"columns[{index}]"
        if not isinstance(column, dict):
            raise ConfigError(f"{where} must be a mapping with name, type, required, default")
        unknown = set(column) - {"name", "type", "required", "default", "collection_type"}
        if unknown:
            raise ConfigError(
                f"{where} has unknown field(s) {sorted(unknown)}; use name, type, required, default, "
                "collection_type"
            )
        name = column.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where} needs a 'name' string")
        if name in seen:
            raise ConfigError(f"{where}: column {name!r} is listed twice")
        seen.add(name)
        col_type = column.get("type", "float")
        if col_type not in COLUMN_TYPES:
            raise ConfigError(
                f"{where} ({name}): unknown type {col_type!r}; use one of {', '.join(COLUMN_TYPES)}"
            )
        required = column.get("required", "default" not in column)
        if not isinstance(required, bool):
            raise ConfigError(f"{where} ({name}): 'required' must be true or false")
        collection = _collection_type(column.get("collection_type"), where, name)
        default = column.get("default")
        if default is not None:
            if collection and not isinstance(default, list):
                raise ConfigError(
                    f"{where} ({name}): 'default' must be a list of {col_type}, got "
                    f"{type(default).__name__} {default!r}"
                )
            for item in default if collection else [default]:
                if not is_of_type(item, col_type):
                    raise ConfigError(
                        f"{where} ({name}): 'default' must be {'a list of ' if collection else ''}"
                        f"{col_type}, got {type(item).__name__} {item!r}"
                    )
        result.append(Column(name, col_type, required, default, collection))
    return tuple(result)


def _collection_type(value: Any, where: str, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in COLLECTION_TYPES:
        raise ConfigError(
            f"{where} ({name}): unknown collection_type {value!r}; use 'List' (the value is a list "
            f"of the column's type), or leave it out"
        )
    return value.lower()


def is_of_type(value: Any, col_type: str) -> bool:
    """Whether ``value`` is a value of the column type ``col_type`` (a bool is not an int)."""
    if col_type == ANY_COLUMN_TYPE:
        return True
    if isinstance(value, bool) and col_type != "bool":
        return False
    return isinstance(value, COLUMN_TYPES[col_type])


# ---------------------------------------------------------------------- models fitted on arrays

#: Attributes of scikit-learn estimators that delegate to others (ColumnTransformer,
#: FeatureUnion, ensembles, searches, wrappers): what they take depends on their parts.
_COMPOSITE = ("transformers", "transformer_list", "estimators", "estimator", "best_estimator_",
              "base_estimator")
#: scikit-learn transformers that take strings although their tags do not say so.
_TAKES_STRINGS_UNTAGGED = frozenset({"SimpleImputer", "FunctionTransformer"})


def fixed_width_rows(model: Any) -> FixedWidthRows | None:
    """What the rows of a model fitted on arrays must hold, or None.

    scikit-learn records the width of the arrays an estimator (or a Pipeline, through its first
    step) was fitted on as ``n_features_in_``; every row must then have that many values.
    Values must be numbers when the estimator, or a Pipeline's first step, is one of
    scikit-learn's own whose tags declare neither string nor categorical input (third-party
    estimators, composites and the transformers that take strings without saying so get the
    width check only); ``null`` is then accepted where its tags say it handles NaN.
    """
    try:
        width = getattr(model, "n_features_in_", None)
    except Exception:  # a property that fails on an unfitted model
        return None
    if not isinstance(width, numbers.Integral) or isinstance(width, bool) or width < 1:
        return None
    tags = _input_tags(_first_step(model))
    if tags is None:
        return FixedWidthRows(int(width))
    takes_numbers_only, allows_nan = tags
    return FixedWidthRows(int(width), numbers=takes_numbers_only, nulls=allows_nan or not takes_numbers_only)


def _first_step(model: Any) -> Any:
    """The estimator that first sees the rows: a Pipeline's first step (recursively)."""
    steps = getattr(model, "steps", None)
    if not isinstance(steps, list):
        return model
    for step in steps:
        estimator = step[1] if isinstance(step, tuple) and len(step) == 2 else None
        if estimator is not None and estimator != "passthrough":
            return _first_step(estimator)
    return None


def _input_tags(estimator: Any) -> tuple[bool, bool] | None:
    """(takes numbers only, handles NaN) from a scikit-learn estimator's tags; None when the
    estimator is not one of scikit-learn's own simple estimators, or its tags cannot be read."""
    kind = type(estimator)
    if not kind.__module__.startswith("sklearn.") or kind.__name__ in _TAKES_STRINGS_UNTAGGED:
        return None
    if any(hasattr(estimator, name) for name in _COMPOSITE):
        return None
    try:
        try:
            from sklearn.utils import get_tags  # scikit-learn >= 1.6
        except ImportError:
            old = estimator._get_tags()
            return set(old.get("X_types", ["2darray"])) <= {"2darray", "sparse"}, bool(old.get("allow_nan"))
        tags = get_tags(estimator).input_tags
        takes_other = tags.string or tags.categorical or getattr(tags, "dict", False)
        return not takes_other, bool(tags.allow_nan)
    except Exception:  # tags of an unexpected form: no number check
        return None


def columns_from_model(model: Any) -> tuple[Column, ...] | None:
    """The columns named by the model's ``feature_names_in_``, or None.

    scikit-learn sets ``feature_names_in_`` (an array of str) on an estimator, and on a
    Pipeline through its first step, when it was fitted on a DataFrame whose column names are
    all strings. Each name becomes a required column of type ``"any"``. Anything else (no such
    attribute, names that are not unique non-empty strings) gives None: nothing changes.
    """
    try:
        names = getattr(model, "feature_names_in_", None)
    except Exception:  # a property that fails on an unfitted model
        return None
    if names is None or isinstance(names, (str, bytes)):
        return None
    try:
        names = list(names)
    except TypeError:
        return None
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        return None
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    logger.info(
        "columns: %d derived from the model's feature_names_in_ (%s), type any; set `columns` "
        "to give their types", len(names), shown,
    )
    return tuple(Column(str(name), ANY_COLUMN_TYPE) for name in names)


def _interface(
    predict: Callable[..., Any], arguments: tuple[Argument, ...], columns: tuple[Column, ...] | None,
    outputs: Outputs | None = None,
    fixed_width: FixedWidthRows | None = None,
) -> ModelInterface:
    """The interface, with ``columns`` (or else ``fixed_width``) on the rows argument too."""
    if columns:
        arguments = tuple(attrs.evolve(a, columns=columns) if a.is_rows else a for a in arguments)
    elif fixed_width is not None:
        arguments = tuple(attrs.evolve(a, fixed_width=fixed_width) if a.is_rows and a.tensor is None else a
                          for a in arguments)
    return ModelInterface(predict, arguments, columns, outputs)


def outputs_of(predict: Callable[..., Any], predict_method_name: str = "predict") -> Outputs | None:
    """The outputs ``predict`` declares by its return annotation: an :class:`Outputs`, a
    single :class:`Tensor` (one output named ``predict_method_name``), either of them inside
    ``typing.Annotated``; None for any other annotation or none."""
    try:
        annotation = inspect.signature(predict).return_annotation
    except (TypeError, ValueError):
        return None
    if isinstance(annotation, str):  # ``from __future__ import annotations``
        # Evaluated as typing.get_type_hints does, which refuses instances before Python 3.11.
        function = inspect.unwrap(getattr(predict, "__func__", predict))
        try:
            annotation = eval(annotation, dict(getattr(function, "__globals__", {})))
        except Exception:
            return None
    candidates = [annotation]
    if typing.get_origin(annotation) is typing.Annotated:
        candidates += list(annotation.__metadata__)
    for candidate in candidates:
        if isinstance(candidate, Outputs):
            return candidate
        if isinstance(candidate, Tensor):
            return Outputs({predict_method_name: candidate})
    return None


_ANNOTATION_KINDS = {int: "int", float: "float", str: "str", bool: "bool", list: "list", dict: "dict"}


def _kind_of(annotation: Any) -> tuple[str, bool]:
    """(kind, optional) of a parameter annotation."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any", False
    if isinstance(annotation, Tensor):
        return "array", False
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, Tensor):
                return "array", False
        return _kind_of(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _kind_of(non_none[0])[0], True
        return "any", type(None) in args
    if origin in (list, tuple) or annotation in (list, tuple):
        return "list", False
    if origin is dict:
        return "dict", False
    name = getattr(annotation, "__name__", "")
    if name in ("ndarray", "DataFrame", "Tensor", "ArrayLike"):
        return "array", False
    return _ANNOTATION_KINDS.get(annotation, "any"), False


def _tensor_of(annotation: Any) -> Tensor | None:
    if isinstance(annotation, Tensor):
        return annotation
    if typing.get_origin(annotation) is typing.Annotated:
        return next((m for m in annotation.__metadata__ if isinstance(m, Tensor)), None)
    return None


def analyse(
    model: Any,
    *,
    predict_method_name: str = "predict",
    auto_detect_predict_params: bool = True,
    columns: list[dict[str, Any]] | None = None,
) -> ModelInterface:
    """Find ``model.<predict_method_name>`` and describe its arguments.

    ``columns`` (the setting) names the rows' fields; without it they come from the model's
    ``feature_names_in_`` when it has one (:func:`columns_from_model`). The outputs come from
    the predict function's return annotation (:func:`outputs_of`).
    """
    predict = getattr(model, predict_method_name, None)
    if predict is None:
        public = sorted(
            n for n in dir(model) if not n.startswith("_") and callable(getattr(model, n, None))
        )
        raise ModelAnalysisError(
            f"the model ({type(model).__name__}) has no method {predict_method_name!r} "
            f"(predict_method_name); its public methods: {', '.join(public) or 'none'}"
        )
    if not callable(predict):
        raise ModelAnalysisError(f"model attribute {predict_method_name!r} is not callable")
    parsed_columns = parse_columns(columns) if columns else columns_from_model(model)
    outputs = outputs_of(predict, predict_method_name)
    width = fixed_width_rows(model)
    if width is not None and parsed_columns and len(parsed_columns) != width.width:
        raise ModelAnalysisError(
            f"columns lists {len(parsed_columns)} columns but the model was fitted on {width.width} "
            f"features (its n_features_in_); list the {width.width} columns it takes, in order"
        )

    if not auto_detect_predict_params:
        fixed = (Argument(DEFAULT_X_ARG_NAME, "array", is_rows=True, positional=True),)
        return _interface(predict, fixed, parsed_columns, outputs, width)

    try:
        signature = inspect.signature(predict)
    except (TypeError, ValueError):  # builtins without a signature: one positional rows arg
        fixed = (Argument("X", "array", is_rows=True, positional=True),)
        return _interface(predict, fixed, parsed_columns, outputs, width)

    try:
        hints = typing.get_type_hints(predict, include_extras=True)
    except Exception:
        hints = {}
    params = [
        p
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]
    if not params:
        var = next(iter(signature.parameters.values()), None)
        if var is not None and var.kind is inspect.Parameter.VAR_POSITIONAL:
            params = [inspect.Parameter("X", inspect.Parameter.POSITIONAL_ONLY)]
        else:
            raise ModelAnalysisError(
                f"{predict_method_name}() takes no arguments; core needs at least one to pass rows"
            )
    rows_name = "X" if any(p.name == "X" for p in params) else params[0].name
    arguments = []
    for param in params:
        annotation = hints.get(param.name, param.annotation)
        kind, optional = _kind_of(annotation)
        tensor = _tensor_of(annotation)
        is_rows = param.name == rows_name
        if is_rows:
            kind = "array"
        has_default = param.default is not inspect.Parameter.empty
        arguments.append(
            Argument(
                name=param.name,
                kind=kind,
                required=not has_default and not optional,
                default=param.default if has_default else None,
                is_rows=is_rows,
                tensor=tensor,
                positional=param.kind is inspect.Parameter.POSITIONAL_ONLY,
            )
        )
    return _interface(predict, tuple(arguments), parsed_columns, outputs, width)
