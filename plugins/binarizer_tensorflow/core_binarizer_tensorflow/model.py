"""``TensorFlowModel``: a Keras model or a SavedModel signature with a ``predict`` core serves.

A Keras model (``.keras``, ``.h5``) is called directly, ``model(x, training=False)``: one
eager call per prediction, without ``Model.predict``'s per-call set-up (a data adapter and a
compiled predict function), which costs milliseconds on every request. A SavedModel is read
with ``tf.saved_model.load`` and served through its ``serving_default`` signature: the
graph the exporter wrote for serving, with named inputs and outputs, which needs no Keras
and also serves SavedModels that were never Keras models.

``predict`` (and ``__call__``, for pymlup's ``predict_method_name = "__call__"``) takes the
rows as ``X`` when the model has one input, else one argument per input named after it. Its
signature describes the model the documented way (docs/plugins.md, "Describing a model's
tensors"): each input a :class:`core.Tensor` with the model's dtype and shape, and a
:class:`core.Outputs` of the model's outputs. So a row of the wrong width is a 422 before
TensorFlow sees it, and V2 reads the model's own input and output names.
"""

from __future__ import annotations

import inspect
import keyword
import os
import re
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
from core.analysis import Outputs, Tensor
from core.components import LoadedFile
from core.errors import ModelLoadError

from core_binarizer_tensorflow import formats
from core_binarizer_tensorflow.errors import one_line
from core_binarizer_tensorflow.runtime import tf

#: The TensorFlow dtypes core's tensors can declare (numpy names, and ``string``).
DTYPES = frozenset({
    "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool", "string",
})
#: The rows argument of a model with one input.
ROWS = "X"


@attrs.frozen
class TensorInfo:
    """One input or output of the model.

    :ivar name: the model's name for it (a Keras input or output layer, a signature key).
    :ivar argument: for an input, the ``predict`` parameter and request field: ``X`` for the
        one input of a model, else the name made a Python identifier.
    :ivar dtype: as core names it (``float32``, ``int64``, ``string``...), ``None`` for one
        core cannot declare (``bfloat16``...).
    :ivar shape: one entry per dimension, ``None`` for any size; ``None`` when unknown.
    """

    name: str
    argument: str
    dtype: str | None
    shape: tuple[int | None, ...] | None

    @property
    def tensor(self) -> Tensor | None:
        if self.dtype is None:
            return None
        return Tensor(self.dtype, self.shape,
                      name=self.name if self.name != self.argument else None)


def _dtype(dtype: Any) -> str | None:
    try:
        name = str(tf.as_dtype(dtype).name)
    except (TypeError, ValueError):
        return None
    return name if name in DTYPES else None


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    try:
        dims = tuple(tf.TensorShape(shape).as_list())
    except (TypeError, ValueError):
        return None
    return tuple(dim if isinstance(dim, int) and dim >= 0 else None for dim in dims)


def _identifier(name: str, taken: set[str]) -> str:
    result = re.sub(r"\W", "_", name) or "_"
    if not result.isidentifier():
        result = f"_{result}"
    if keyword.iskeyword(result):
        result = f"{result}_"
    base, index = result, 2
    while result in taken:
        result, index = f"{base}_{index}", index + 1
    taken.add(result)
    return result


def describe_inputs(specs: Sequence[tuple[str, Any, Any]]) -> tuple[TensorInfo, ...]:
    """``(name, dtype, shape)`` of each input -> TensorInfo; one input is the argument ``X``."""
    if len(specs) == 1:
        name, dtype, shape = specs[0]
        return (TensorInfo(name, ROWS, _dtype(dtype), _shape(shape)),)
    taken: set[str] = set()
    return tuple(TensorInfo(name, _identifier(name, taken), _dtype(dtype), _shape(shape))
                 for name, dtype, shape in specs)


def describe_outputs(specs: Sequence[tuple[str, Any, Any]]) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(name, name, _dtype(dtype), _shape(shape))
                 for name, dtype, shape in specs)


def _feed(value: Any, info: TensorInfo) -> Any:
    """``value`` as a tensor of the input's dtype (a tensor of it is passed as it is)."""
    if isinstance(value, tf.Tensor):
        if info.dtype is None or value.dtype.name == info.dtype:
            return value
        return tf.cast(value, info.dtype)
    if info.dtype == "string":
        return tf.constant(np.asarray(value, dtype=object))
    return tf.convert_to_tensor(np.asarray(value, dtype=info.dtype))


def to_numpy(value: Any) -> Any:
    """A tensor (or anything array-like) as a numpy array (a numpy scalar for a scalar);
    TensorFlow strings (bytes) as ``str`` where they are UTF-8."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    array = np.asarray(value)
    if array.ndim == 0:  # a scalar output: a numpy scalar, as numpy's own reductions give
        return to_numpy(array.reshape(1))[0]
    if array.dtype.kind in "OS":
        return np.vectorize(_text, otypes=[object])(array) if array.size else array.astype(object)
    return array


def _text(item: Any) -> Any:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            return item
    return item


def _signature(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> inspect.Signature:
    parameters = [
        inspect.Parameter(info.argument, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=info.tensor if info.tensor is not None
                          else inspect.Parameter.empty)
        for info in inputs
    ]
    declared = {info.name: info.tensor for info in outputs if info.tensor is not None}
    return inspect.Signature(parameters,
                             return_annotation=Outputs(declared) if declared else dict)


class TensorFlowModel:
    """A Keras model or SavedModel signature, ready to serve.

    :ivar model: the ``keras.Model``, or the object ``tf.saved_model.load`` returned.
    :ivar format: ``"keras"``, ``"h5"``, ``"saved_model"`` or ``"saved_model_zip"``.
    :ivar inputs: what ``predict`` takes, one :class:`TensorInfo` per model input.
    :ivar outputs: what it returns, one :class:`TensorInfo` per model output.
    :ivar predict: ``predict(X)`` (or one argument per input) -> a numpy array for a model
        with one output, else ``{output name: array}``. Arrays, lists and ``tf.Tensor``
        values are taken; each becomes a tensor of the input's dtype.
    """

    predict: Callable[..., Any]

    def __init__(self, call: Callable[[list[Any]], Any], inputs: tuple[TensorInfo, ...],
                 outputs: tuple[TensorInfo, ...], *, model: Any, format: str, name: str) -> None:
        self.model = model
        self.format = format
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.predict = self._make_predict(call)
        # pymlup serves Keras models with predict_method_name = "__call__": core's analysis
        # reads this attribute, the same function as predict, signature included.
        vars(self)["__call__"] = self.predict

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.predict(*args, **kwargs)

    def _make_predict(self, call: Callable[[list[Any]], Any]) -> Callable[..., Any]:
        # The function closes over the model's call, not over self: no reference cycle.
        inputs = self.inputs
        names = [info.name for info in self.outputs]
        signature = _signature(inputs, self.outputs)
        arguments = [info.argument for info in inputs]

        def predict(*args: Any, **kwargs: Any) -> Any:
            if args or kwargs.keys() != set(arguments):
                kwargs = signature.bind(*args, **kwargs).arguments
            result = call([_feed(kwargs[info.argument], info) for info in inputs])
            return _results(result, names)

        predict.__signature__ = signature  # type: ignore[attr-defined]
        predict.__name__ = "predict"
        predict.__qualname__ = "TensorFlowModel.predict"
        predict.__doc__ = (
            f"Run {self.name}: takes "
            + ", ".join(f"{i.argument} ({i.dtype}, shape {i.shape})" for i in inputs)
            + "; returns " + ", ".join(repr(name) for name in names) + "."
        )
        return predict

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.argument}: {i.dtype}{list(i.shape or [])}" for i in self.inputs)
        outs = ", ".join(o.name for o in self.outputs)
        return f"<TensorFlowModel {self.format} {self.name} ({ins}) -> ({outs})>"


def _results(result: Any, names: list[str]) -> Any:
    """The model's result: one output as an array, several as ``{name: array}``."""
    if isinstance(result, dict):
        arrays = {str(key): to_numpy(value) for key, value in result.items()}
        return next(iter(arrays.values())) if len(arrays) == 1 else arrays
    if isinstance(result, (list, tuple)):
        if len(result) == 1:
            return to_numpy(result[0])
        keys = names if len(names) == len(result) else [f"output_{i}" for i in range(len(result))]
        return {key: to_numpy(value) for key, value in zip(keys, result)}
    return to_numpy(result)


# ---------------------------------------------------------------------- loading


def load(file: LoadedFile, kind: str, *, safe_mode: bool, signature: str) -> TensorFlowModel:
    """Read ``file``, of the format ``kind`` (:mod:`core_binarizer_tensorflow.formats`)."""
    name = file.display_name
    if kind in (formats.KERAS, formats.H5):
        return _load_keras(file, kind, safe_mode)
    if kind == formats.SAVED_MODEL:
        if file.path is None or not os.path.exists(file.path):
            raise ModelLoadError(
                f"tensorflow binarizer: the SavedModel {name} is read from its folder on the "
                f"disk, and there is none here; hand over its path (storage_type = 'disk'), "
                f"or a zip of the folder"
            )
        root = file.path if os.path.isdir(file.path) else os.path.dirname(file.path)
        return _load_saved_model(root, signature, name, kind)
    workdir = tempfile.mkdtemp(prefix="core-savedmodel-")
    try:
        model = _load_saved_model(_unzip(file, workdir), signature, name, kind)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    # The unpacked folder lives as long as the model (TensorFlow may read its assets later),
    # and is removed when the model is dropped or the process exits.
    weakref.finalize(model, shutil.rmtree, workdir, True)
    return model


def _keras() -> Any:
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ModelLoadError(
            f"tensorflow binarizer: Keras runs on {backend!r} here (KERAS_BACKEND), and this "
            f"binarizer serves Keras models on TensorFlow; unset KERAS_BACKEND or set it to "
            f"'tensorflow'"
        )
    return keras


def _load_keras(file: LoadedFile, kind: str, safe_mode: bool) -> TensorFlowModel:
    keras = _keras()
    name = file.display_name
    suffix = ".keras" if kind == formats.KERAS else ".h5"
    with tempfile.TemporaryDirectory(prefix="core-keras-") as scratch:
        # Keras picks the reader from the file name: a file named otherwise is linked (or,
        # from bytes, written) under a name that says what it is.
        if file.raw_data is None and file.path is not None and os.path.isfile(file.path):
            path = file.path
            named = formats.KERAS_SUFFIXES if kind == formats.KERAS else formats.H5_SUFFIXES
            if not path.lower().endswith(named):
                path = os.path.join(scratch, f"model{suffix}")
                os.symlink(os.path.abspath(file.path), path)
        elif file.raw_data is not None:
            path = os.path.join(scratch, f"model{suffix}")
            with open(path, "wb") as handle:
                handle.write(file.raw_data)
        elif file.path is not None:
            raise ModelLoadError(f"tensorflow binarizer: {file.path} does not exist")
        else:
            raise ModelLoadError(f"tensorflow binarizer: {name} has neither a path nor bytes")
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
        except Exception as error:
            raise _load_error(name, kind, error) from error
    return keras_model(model, name=name, format=kind)


def keras_model(model: Any, *, name: str = "model", format: str = formats.KERAS) -> TensorFlowModel:
    """A loaded ``keras.Model`` as a :class:`TensorFlowModel`, called as
    ``model(x, training=False)``."""
    try:
        inputs = list(model.inputs)
        outputs = list(model.outputs)
    except (AttributeError, ValueError):  # a subclassed model that was never called
        inputs = outputs = []
    if inputs:
        input_infos = describe_inputs([(t.name, t.dtype, t.shape) for t in inputs])
    else:
        input_infos = (TensorInfo(ROWS, ROWS, "float32", None),)
    output_names = _output_names(model, len(outputs))
    output_infos = describe_outputs(
        [(n, t.dtype, t.shape) for n, t in zip(output_names, outputs)]
    )

    if len(input_infos) == 1:
        def call(tensors: list[Any]) -> Any:
            return model(tensors[0], training=False)
    else:
        def call(tensors: list[Any]) -> Any:
            return model(tensors, training=False)

    return TensorFlowModel(call, input_infos, output_infos, model=model, format=format, name=name)


def _output_names(model: Any, count: int) -> list[str]:
    names = getattr(model, "output_names", None)
    if isinstance(names, (list, tuple)) and len(names) == count \
            and all(isinstance(n, str) and n for n in names) and len(set(names)) == count:
        return list(names)
    return [f"output_{i}" for i in range(count)]


def _unzip(file: LoadedFile, into: str) -> str:
    """Unpack a zipped SavedModel into ``into``; the folder holding its saved_model.pb."""
    name = file.display_name
    source: Any
    if file.raw_data is not None:
        import io

        source = io.BytesIO(memoryview(file.raw_data))
    elif file.path is not None:
        source = file.path
    else:
        raise ModelLoadError(f"tensorflow binarizer: {name} has neither a path nor bytes")
    try:
        with zipfile.ZipFile(source) as archive:
            roots = formats.saved_model_roots(archive.namelist())
            if len(roots) != 1:
                found = ", ".join(f"{r or '(the root)'}/saved_model.pb" for r in roots)
                raise ModelLoadError(
                    f"tensorflow binarizer: {name} holds {len(roots)} SavedModels ({found}); "
                    f"zip one SavedModel folder" if roots else
                    f"tensorflow binarizer: {name} holds no saved_model.pb at its root or in "
                    f"one folder; zip a SavedModel folder (model.export(path) in Keras)"
                )
            archive.extractall(into)  # zipfile drops absolute paths and '..' parts
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelLoadError(
            f"tensorflow binarizer: cannot unzip {name}: {one_line(error)}"
        ) from error
    return os.path.join(into, roots[0]) if roots[0] else into


def _load_saved_model(root: str, signature: str, name: str, kind: str) -> TensorFlowModel:
    try:
        loaded = tf.saved_model.load(root)
    except Exception as error:
        raise _load_error(name, kind, error) from error
    signatures = getattr(loaded, "signatures", {}) or {}
    if signature not in signatures:
        have = ", ".join(sorted(signatures)) or "none"
        raise ModelLoadError(
            f"tensorflow binarizer: the SavedModel {name} has no signature {signature!r} "
            f"(binarization_kwargs.signature); its signatures: {have}. Keras writes "
            f"serving_default with model.export(path)"
        )
    function = signatures[signature]
    _, specs = function.structured_input_signature
    input_infos = describe_inputs([(key, spec.dtype, spec.shape) for key, spec in specs.items()])
    structured = function.structured_outputs
    outputs = structured.items() if isinstance(structured, dict) else []
    output_infos = describe_outputs([(key, spec.dtype, spec.shape) for key, spec in outputs])
    keys = [info.name for info in input_infos]

    def call(tensors: list[Any]) -> Any:
        return function(**dict(zip(keys, tensors)))

    return TensorFlowModel(call, input_infos, output_infos, model=loaded, format=kind, name=name)


def _load_error(name: str, kind: str, error: BaseException) -> ModelLoadError:
    message = one_line(error)
    if "safe_mode" in message or "unsafe" in message.lower():
        return ModelLoadError(
            f"tensorflow binarizer: {name} holds Python code (a Lambda layer), which Keras's "
            f"safe mode refuses to run; if you trust the file, set binarization_kwargs.safe_mode "
            f"= false (auto then needs binarization_type = 'tensorflow' or a sha256 pin)"
        )
    what = {formats.KERAS: "a .keras model", formats.H5: "a legacy .h5 Keras model"}.get(
        kind, "a SavedModel")
    return ModelLoadError(f"tensorflow binarizer: cannot load {name} as {what}: {message}")


__all__ = ["DTYPES", "TensorFlowModel", "TensorInfo", "keras_model", "load", "to_numpy"]
