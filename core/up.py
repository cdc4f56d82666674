"""``UP``: the application object of the seeds' life cycle (``up.ml``, ``up.web``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from core.config import Config
from core.ml import ML
from core.plugins import Plugins, get_plugins
from core.transformers import nan_to_none
from core.web import Web


class UP:
    """A model and its config, ready to load and serve.

    >>> up = UP(ml_model=my_model)          # memory storage: the model is already here
    >>> up.ml.load(); up.predict(X=[[1, 2, 3]])
    """

    def __init__(self, ml_model: Any = None, conf: Config | None = None,
                 plugins: Plugins | None = None) -> None:
        self.conf = conf if conf is not None else Config()
        self.plugins = plugins if plugins is not None else get_plugins()
        self.ml = ML(self, ml_model)
        self.web = Web(self)

    # ------------------------------------------------------------------ config

    @classmethod
    def load_from_dict(cls, conf: dict[str, Any], load_model: bool = True) -> UP:
        up = cls(conf=Config.from_dict(conf))
        if load_model:
            up.ml.load()
        return up

    @classmethod
    def load_from_file(cls, path: str | os.PathLike[str], load_model: bool = True,
                       format: str | None = None) -> UP:
        """A TOML, JSON or YAML config file, by its extension (or ``format``)."""
        up = cls(conf=Config.from_file(path, format))
        if load_model:
            up.ml.load()
        return up

    @classmethod
    def load_from_yaml(cls, path: str | os.PathLike[str], load_model: bool = True) -> UP:
        """A YAML config file, whatever its name (as pymlup reads it; JSON is YAML too)."""
        return cls.load_from_file(path, load_model, format="yaml")

    @classmethod
    def load_from_json(cls, path: str | os.PathLike[str], load_model: bool = True) -> UP:
        """A JSON config file, whatever its name."""
        return cls.load_from_file(path, load_model, format="json")

    @classmethod
    def load_from_toml(cls, path: str | os.PathLike[str], load_model: bool = True) -> UP:
        """A TOML config file, whatever its name."""
        return cls.load_from_file(path, load_model, format="toml")

    def to_dict(self) -> dict[str, Any]:
        """The config in pymlup's shape, ``{"ml": {...}, "web": {...}}``
        (``up.conf.to_flat_dict()`` for every key at one level)."""
        return self.conf.to_dict()

    def to_json(self, path: str | Path | None = None) -> str:
        """The config as a JSON file in pymlup's shape (``version``, ``ml``, ``web``)."""
        return self.conf.to_json(path)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as a YAML file in pymlup's shape (needs PyYAML)."""
        return self.conf.to_yaml(path)

    def to_toml(self, path: str | Path | None = None) -> str:
        """The config as a flat TOML file, ``core``'s own format."""
        return self.conf.to_toml(path)

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        """What ``pickle.dumps(up)`` keeps (pymlup's UP pickles and predicts once unpickled):
        the config and the model object, which must itself pickle. Thread pools, the web app,
        a running server and the plugin manager are not kept: the unpickled UP uses the
        process's plugins (:func:`core.plugins.get_plugins`), analyses its model again, and
        builds its web app on ``up.web.load()`` or ``up.run_web_app()``."""
        return {"conf": self.conf, "ml": self.ml.model_state()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        UP.__init__(self, conf=state["conf"])
        self.ml.restore(state["ml"])

    # ------------------------------------------------------------------ predicting

    def predict(self, **predict_data: Any) -> Any:
        """Predict like ``POST /predict``: ``up.predict(X=[[1, 2, 3]])``."""
        return plain(_run(self.ml.predict(**predict_data)))

    def predict_from(self, **predict_data: Any) -> Any:
        """Predict on data already in the model's format (numpy arrays...), no validation."""
        return _run(self.ml.predict_from(**predict_data))

    async def async_predict(self, **predict_data: Any) -> Any:
        return plain(await self.ml.predict(**predict_data))

    # ------------------------------------------------------------------ serving

    def run_web_app(self, daemon: bool = False, force_load: bool = False) -> None:
        """Serve with hypercorn on ``conf.host:conf.port``; ``daemon=True`` returns once the
        server listens (stop it with :meth:`stop_web_app`)."""
        if not self.ml.loaded:
            self.ml.load()
        if not self.web.loaded or force_load:
            self.web.load()
        self.web.run(daemon=daemon)

    def stop_web_app(self, shutdown_timeout: float | None = None) -> None:
        self.web.stop(shutdown_timeout=shutdown_timeout)

    def info(self) -> dict[str, Any]:
        """What ``GET /info`` answers."""
        from core.openapi import request_schema

        conf = self.conf
        interface = self.ml.interface
        architecture = self.web.architecture
        # Where the rows' fields come from: the setting, or the model's feature_names_in_.
        columns_from = None
        if interface is not None and interface.columns:
            columns_from = "config" if conf.columns else "feature_names_in_"
        info: dict[str, Any] = {
            "name": conf.name,
            "version": conf.version,
            "model": {
                "type": type(self.ml.model_obj).__name__ if self.ml.loaded else None,
                "storage_type": conf.storage_type,
                "binarization_type": self.ml.binarizer_name,
                "files": self.ml.files,
                "predict_method_name": conf.predict_method_name,
                "arguments": [
                    {"name": a.name, "kind": a.kind, "required": a.required,
                     "default": a.default, "is_rows": a.is_rows,
                     "dtype": a.tensor.dtype if a.tensor else None,
                     "shape": list(a.tensor.shape) if a.tensor and a.tensor.shape else None,
                     "columns": [c.name for c in a.columns] if a.columns else None}
                    for a in (interface.arguments if interface else ())
                ],
                "outputs": [
                    {"name": name, "dtype": tensor.dtype, "kind": tensor.kind,
                     "shape": list(tensor.shape) if tensor.shape else None}
                    for name, tensor in interface.outputs.items()
                ] if interface is not None and interface.outputs is not None else None,
                "columns": conf.columns,
                "columns_from": columns_from,
            },
            "process": {"pid": os.getpid()},
            "request_schema": request_schema(interface) if interface else None,
            "architecture": {"mode": conf.mode, **(architecture.info() if architecture else {})},
            "web": {
                "active_predicts": self.web.active_predicts,
                "draining": bool(self.web.gate and self.web.gate.draining),
                "live": self.web.live().ok if self.web.gate else None,
                "ready": self.web.ready().ok if self.web.gate else None,
                "body_timeout": conf.body_timeout,
                "predict_timeout": conf.predict_timeout,
                "max_stuck_predicts": conf.max_stuck_predicts,
                "throttling_max_requests": conf.throttling_max_requests,
                "throttling_max_request_len": conf.throttling_max_request_len,
                "max_body_size": conf.max_body_size,
            },
            "plugins": [p.to_dict() for p in self.plugins.info()],
        }
        service = self.web.service
        if service is not None:
            for extra in self.plugins.hook.extend_info(service=service):
                info.update(extra or {})
        return info


def plain(data: Any) -> Any:
    """The JSON-ready result as plain Python values, as the web path's JSON has them: the web
    path lets orjson write arrays (NaN and infinities as null); here they become lists."""
    if hasattr(data, "tolist") and hasattr(data, "dtype"):
        return nan_to_none(data.tolist())
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data


def _run(coro: Any) -> Any:
    """Run a coroutine from sync code, also when called inside a running loop's thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


