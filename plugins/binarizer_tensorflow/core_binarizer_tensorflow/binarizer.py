"""``TensorFlowBinarizer``: a Keras model (``.keras``, ``.h5``) or a SavedModel (a folder or a
zip of one), served as a :class:`~core_binarizer_tensorflow.model.TensorFlowModel`.

This module does not import TensorFlow: ``core`` imports every binarizer class to ask it
:meth:`~TensorFlowBinarizer.detect` (``binarization_type = "auto"``), and TensorFlow takes
seconds to import. It is imported by :meth:`~TensorFlowBinarizer.deserialize`.

.. warning::

   Keras's safe mode (on by default) refuses the Python code a ``Lambda`` layer carries;
   ``safe_mode = false`` lets it run, so ``auto`` then loads a file only where the config
   trusts it (``binarization_type = "tensorflow"`` or a ``sha256`` pin). A SavedModel is a
   TensorFlow graph: it holds no Python, but its operations run as the server's user
   (TensorFlow's security policy: treat a model as a program). Serve models you trust.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import attrs
from core import progress
from core.components import Binarizer, LoadedFile
from core.errors import ConfigError, ModelLoadError

from core_binarizer_tensorflow import formats

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _check_sha256(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, str) and _SHA256.fullmatch(value)):
        raise ConfigError(
            f"tensorflow binarizer: binarization_kwargs.sha256 must be the file's SHA-256 as 64 "
            f"hex digits (sha256sum model.keras), got {value!r}"
        )


def _check_threads(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(
            f"tensorflow binarizer: binarization_kwargs.{attribute.name} must be a whole number "
            f"(0 lets TensorFlow choose), got {value!r}"
        )


def _check_bool(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(
            f"tensorflow binarizer: binarization_kwargs.{attribute.name} must be true or false, "
            f"got {value!r}"
        )


def _check_signature(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"tensorflow binarizer: binarization_kwargs.signature must be the name of a "
            f"SavedModel signature (\"serving_default\"), got {value!r}"
        )


@attrs.define(kw_only=True)
class TensorFlowBinarizer(Binarizer):
    """A Keras model or a TensorFlow SavedModel, returned as a ``TensorFlowModel``.

    :param safe_mode: Keras's safe mode for ``.keras`` and ``.h5`` files: refuse the Python
        code of ``Lambda`` layers. ``False`` loads it (it runs code from the file), so
        ``binarization_type = "auto"`` then needs a ``sha256`` pin.
    :param intra_op_parallelism_threads: threads inside one operation (0 or unset:
        TensorFlow chooses, one per core); set before TensorFlow runs anything.
    :param inter_op_parallelism_threads: threads running independent operations at once.
    :param sha256: the model file's SHA-256 (64 hex digits): a ``.keras``, ``.h5`` or ``.zip``
        file, or a SavedModel folder's ``saved_model.pb`` (its graph). Another file is refused,
        unread.
    :param signature: the SavedModel signature served (``serving_default``, what Keras's
        ``model.export()`` and ``tf.saved_model.save`` write).
    """

    safe_mode: bool = attrs.field(default=True, validator=_check_bool)
    intra_op_parallelism_threads: int | None = attrs.field(default=None, validator=_check_threads)
    inter_op_parallelism_threads: int | None = attrs.field(default=None, validator=_check_threads)
    sha256: str | None = attrs.field(default=None, converter=_lower, validator=_check_sha256)
    signature: str = attrs.field(default="serving_default", validator=_check_signature)

    pin_setting = "sha256"

    @property
    def runs_code(self) -> bool:  # type: ignore[override]
        """Reading a file runs its code only with ``safe_mode = false`` (Lambda layers)."""
        return not self.safe_mode

    @classmethod
    def detect(cls, file: LoadedFile) -> tuple[float, str]:
        found = formats.guess(file)
        return found.score, found.reason

    def deserialize(self, files: list[LoadedFile]) -> Any:
        if not files:
            raise ModelLoadError("tensorflow binarizer: the storage found no file")
        guesses = [(formats.guess(file), file) for file in files]
        found, file = next(((g, f) for g, f in guesses if g.kind is not None), guesses[0])
        name = file.display_name
        if found.kind is None:
            raise ModelLoadError(
                f"tensorflow binarizer: cannot read {name}: {found.reason}; it reads .keras and "
                f".h5 files, a SavedModel folder (its saved_model.pb) and a zip of one"
            )
        if self.sha256 is not None:
            self._verify(file, found.kind)
        from core_binarizer_tensorflow import model, runtime

        runtime.configure_threads(
            self.intra_op_parallelism_threads, self.inter_op_parallelism_threads
        )
        return model.load(file, found.kind, safe_mode=self.safe_mode, signature=self.signature)

    def _verify(self, file: LoadedFile, kind: str) -> None:
        name = file.display_name
        if file.raw_data is not None:
            actual = hashlib.sha256(file.raw_data).hexdigest()
        elif file.path is not None:
            path = file.path
            if kind == formats.SAVED_MODEL and os.path.isdir(path):
                path = os.path.join(path, "saved_model.pb")
            try:
                with open(path, "rb") as handle:
                    actual = progress.sha256_of(handle, os.fstat(handle.fileno()).st_size, name)
            except OSError as error:
                raise ModelLoadError(
                    f"tensorflow binarizer: cannot open {path}: {error.strerror or error}"
                ) from None
        else:
            raise ModelLoadError(f"tensorflow binarizer: {name} has neither a path nor bytes")
        if actual != self.sha256:
            raise ModelLoadError(
                f"tensorflow binarizer: refusing to load {name}: its SHA-256 is {actual}, but "
                f"binarization_kwargs.sha256 expects {self.sha256}; the file changed, or the "
                f"setting is out of date"
            )
