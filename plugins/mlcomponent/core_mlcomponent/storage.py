"""The ``mlcomponent`` storage: import the ``inference`` function and hand ``core`` a model
object that calls it (the binarizer step is skipped)."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar

import attrs

from core.components import LoadedFile, Storage
from core.errors import ConfigError, ModelLoadError
from core_mlcomponent.files import FileExchange
from core_mlcomponent.model import InferenceFunctionModel
from core_mlcomponent.spec import SpecError

logger = logging.getLogger("core")

#: The parameters seed 003's function takes, in order.
SIGNATURE = ("parameters", "inputs", "output_fields", "model_key", "model")


def _str(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"mlcomponent storage: storage_kwargs.{attribute.name} must be a "
                          f"non-empty string, got {value!r}")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"mlcomponent storage: storage_kwargs.{attribute.name} must be a "
                          f"positive number, got {value!r}")


def _env(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise ConfigError("mlcomponent storage: storage_kwargs.env must map names to string values")


def _safe(url: str) -> str:
    """``url`` without a user, password or query (they may hold secrets)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


@attrs.define(kw_only=True)
class MLComponentStorage(Storage):
    """Serve ``inference(parameters, inputs, output_fields, model_key, model)``.

    :param python_function: ``"package.module.inference"`` (``"package.module:inference"``
        works too).
    :param python_path: a folder put first on ``sys.path`` before the import (the manifest's
        ``entryPoint.pythonPath``); default: none.
    :param model_key: the string passed as ``model_key`` (the manifest's ``modelPath``).
    :param files_path: the exchange folder for FILE inputs and outputs (created if missing).
    :param file_ttl: seconds an exchanged file lives; default 3600.
    :param max_models: how many model objects may exist, so how many calls run at once;
        default 1 (one call at a time). See :mod:`core_mlcomponent.model`.
    :param env: environment variables set before the import (the manifest's ``spec.env``).
    :param model_url: where the model is in object storage (``s3://bucket/key``; a manifest
        whose model box is an S3 box sets it). When ``model_key`` is not a path on this machine,
        the file is fetched from this URL by the ``remote`` storage (``core-storage-remote``)
        into its cache, and ``model_key`` becomes the cached file's path. The endpoint and
        credentials come from the environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...).
    """

    #: The model object comes ready (``LoadedFile.obj``): ``core validate`` needs no binarizer.
    hands_over_objects: ClassVar[bool] = True

    python_function: str = attrs.field(validator=_str)
    model_key: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    files_path: str = attrs.field(validator=_str)
    python_path: str | None = attrs.field(default=None)
    file_ttl: float = attrs.field(default=3600.0, validator=_positive)
    max_models: int = attrs.field(default=1, validator=_positive)
    env: dict[str, str] = attrs.field(factory=dict, validator=_env)
    model_url: str | None = attrs.field(default=None)

    def _model_key(self) -> str:
        """``model_key``, or the local copy of :attr:`model_url` when ``model_key`` is not on
        this machine (one info line says which)."""
        if not self.model_url:
            return self.model_key
        if not isinstance(self.model_url, str):
            raise ConfigError(f"mlcomponent storage: storage_kwargs.model_url must be a URL, "
                              f"got {type(self.model_url).__name__}")
        if self.model_key and os.path.exists(self.model_key):
            logger.info("mlcomponent storage: the model box is mounted: model_key %s is on this "
                        "machine, used as it is", self.model_key)
            return self.model_key
        from core.plugins import get_plugins

        try:
            remote: Any = get_plugins().storages.get("remote")
        except ConfigError:
            raise ConfigError(
                f"mlcomponent storage: the model {self.model_key or '(no model_key)'} is not on "
                f"this machine and its box is in object storage ({_safe(self.model_url)}); "
                f"pip install core-storage-remote[s3] to fetch it, or mount the box"
            ) from None
        files = remote(path_to_files=self.model_url).load()
        path = files[0].path if files else None
        if not path:
            raise ModelLoadError(f"mlcomponent storage: the remote storage found no file at "
                                 f"{_safe(self.model_url)}")
        logger.info("mlcomponent storage: the model box is not mounted: fetched %s into %s, "
                    "passed as model_key", _safe(self.model_url), path)
        return path

    def _import(self) -> Any:
        for key, value in self.env.items():
            os.environ[key] = value
        if self.python_path:
            folder = str(Path(self.python_path).expanduser().resolve())
            if not Path(folder).is_dir():
                raise ConfigError(f"mlcomponent storage: python_path {self.python_path!r} is not a folder")
            if folder not in sys.path:
                sys.path.insert(0, folder)
        spec = self.python_function.replace(":", ".")
        module_name, _, attr = spec.rpartition(".")
        if not module_name:
            raise ConfigError(f"mlcomponent storage: python_function {self.python_function!r} must be "
                              f"'module.function'")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ModelLoadError(f"mlcomponent storage: cannot import {module_name!r} for python_function "
                                 f"{self.python_function!r}: {error}") from None
        function = getattr(module, attr, None)
        if not callable(function):
            raise ModelLoadError(f"mlcomponent storage: module {module_name!r} has no function {attr!r}")
        try:
            params = list(inspect.signature(function).parameters)
        except (TypeError, ValueError):
            params = list(SIGNATURE)
        if len(params) < len(SIGNATURE) and not any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in inspect.signature(function).parameters.values()
        ):
            raise ModelLoadError(f"mlcomponent storage: {self.python_function} takes ({', '.join(params)}); "
                                 f"it must take ({', '.join(SIGNATURE)})")
        return function

    def check(self) -> None:
        self._import()

    def load(self) -> list[LoadedFile]:
        function = self._import()
        try:
            exchange = FileExchange(self.files_path, self.file_ttl)
        except ValueError as error:
            raise ConfigError(f"mlcomponent storage: files_path: {error}") from None
        try:
            model = InferenceFunctionModel(function, function_name=self.python_function,
                                           model_key=self._model_key(), exchange=exchange,
                                           max_models=int(self.max_models))
        except SpecError as error:
            raise ModelLoadError(f"mlcomponent storage: the docstring of {self.python_function}: {error}") from None
        exchange.start_sweeper()
        return [LoadedFile(obj=model, name=self.python_function)]
