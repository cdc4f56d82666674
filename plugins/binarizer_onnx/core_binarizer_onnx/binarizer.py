"""``OnnxBinarizer``: build an ``onnxruntime.InferenceSession`` from an ONNX file."""

from __future__ import annotations

import os
from typing import Any

import attrs
import onnxruntime as ort
from core.components import Binarizer, LoadedFile
from core.errors import ConfigError, ModelLoadError

from core_binarizer_onnx.model import OnnxModel

EXTENSION_SCORE = 0.9
PROTO_SCORE = 0.5
WEAK_PROTO_SCORE = 0.3

#: The wire tags that can follow ``ir_version`` in a serialised ModelProto: fields 2 to 8
#: (producer_name, producer_version, domain, model_version, doc_string, graph, opset_import).
_NEXT_FIELD_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}


def _optimization_levels() -> dict[str, Any]:
    levels = {}
    for member_name, member in ort.GraphOptimizationLevel.__members__.items():
        if member_name == "ORT_DISABLE_ALL":
            levels["disable"] = member
        elif member_name.startswith("ORT_ENABLE_"):
            levels[member_name[len("ORT_ENABLE_") :].lower()] = member
    return levels


def _check_threads(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(
            f"onnx binarizer: binarization_kwargs.{attribute.name} must be a whole number "
            f"(0 lets onnxruntime choose), got {value!r}"
        )


def _to_providers(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_providers(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    available = ort.get_available_providers()
    if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
        raise ConfigError(
            f"onnx binarizer: binarization_kwargs.providers must be a list of provider names "
            f"(available here: {', '.join(available)}), got {value!r}"
        )
    missing = [p for p in value if p not in available]
    if missing:
        raise ConfigError(
            f"onnx binarizer: execution provider(s) {', '.join(missing)} not available in this "
            f"onnxruntime build; available: {', '.join(available)}"
        )


def _check_level(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    levels = _optimization_levels()
    if value not in levels:
        raise ConfigError(
            f"onnx binarizer: binarization_kwargs.graph_optimization_level must be one of "
            f"{', '.join(repr(level) for level in levels)}, got {value!r}"
        )


def _varint(data: bytes, start: int) -> tuple[int, int] | None:
    """The protobuf varint at ``start`` and the index after it."""
    value = shift = 0
    for index in range(start, min(len(data), start + 10)):
        value |= (data[index] & 0x7F) << shift
        if not data[index] & 0x80:
            return value, index + 1
        shift += 7
    return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


@attrs.define(kw_only=True)
class OnnxBinarizer(Binarizer):
    """An ONNX model run by onnxruntime, returned as an :class:`OnnxModel`.

    The session is built from the file's path when the file is on the disk (so that
    external-data files next to it are found, and onnxruntime does not keep a copy of the
    bytes); from ``raw_data`` otherwise.

    :param intra_op_num_threads: threads used inside one operator (0 or unset: onnxruntime
        chooses, usually one per core).
    :param inter_op_num_threads: threads running independent operators in parallel.
    :param providers: execution providers in order of preference, e.g.
        ``["CUDAExecutionProvider", "CPUExecutionProvider"]``; unset: onnxruntime's default.
    :param graph_optimization_level: ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"``.
    """

    intra_op_num_threads: int | None = attrs.field(default=None, validator=_check_threads)
    inter_op_num_threads: int | None = attrs.field(default=None, validator=_check_threads)
    providers: list[str] | None = attrs.field(
        default=None, converter=_to_providers, validator=_check_providers
    )
    graph_optimization_level: str = attrs.field(default="all", validator=_check_level)

    @classmethod
    def detect(cls, file: LoadedFile) -> tuple[float, str]:
        if file.has_suffix(".onnx"):
            return EXTENSION_SCORE, "the file name ends with .onnx"
        head = file.head(16)
        if not head:
            return 0.0, "no file name or bytes to look at"
        if head[0] != 0x08:
            return 0.0, "neither a .onnx file name nor the start of an ONNX ModelProto"
        parsed = _varint(head, 1)
        if (
            parsed is not None
            and 1 <= parsed[0] <= 64
            and parsed[1] < len(head)
            and head[parsed[1]] in _NEXT_FIELD_TAGS
        ):
            return PROTO_SCORE, f"the file starts like an ONNX model (ir_version {parsed[0]})"
        return WEAK_PROTO_SCORE, "the file starts with 0x08, like an ONNX model's ir_version"

    def session_options(self) -> Any:
        """The ``onnxruntime.SessionOptions`` these settings make."""
        options = ort.SessionOptions()
        if self.intra_op_num_threads is not None:
            options.intra_op_num_threads = self.intra_op_num_threads
        if self.inter_op_num_threads is not None:
            options.inter_op_num_threads = self.inter_op_num_threads
        options.graph_optimization_level = _optimization_levels()[self.graph_optimization_level]
        return options

    def deserialize(self, files: list[LoadedFile]) -> OnnxModel:
        if not files:
            raise ModelLoadError("onnx binarizer: the storage found no file")
        file = next((f for f in files if f.has_suffix(".onnx")), files[0])
        name = file.display_name
        source: str | bytes
        if file.path is not None and os.path.isfile(file.path):
            source = file.path
        elif file.raw_data is not None:
            raw = file.raw_data
            source = raw if isinstance(raw, bytes) else bytes(raw)
        elif file.path is not None:
            raise ModelLoadError(f"onnx binarizer: {file.path} does not exist")
        else:
            raise ModelLoadError(f"onnx binarizer: {name} has neither a path nor bytes")
        try:
            session = ort.InferenceSession(
                source, sess_options=self.session_options(), providers=self.providers
            )
        except Exception as error:
            raise ModelLoadError(
                f"onnx binarizer: onnxruntime cannot load {name}: {_one_line(error)}"
            ) from error
        return OnnxModel(session, name=name)
