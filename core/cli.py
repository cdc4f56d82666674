"""The ``core`` command: ``serve``, ``validate`` and ``plugins``.

A user mistake (bad config, unknown plugin, missing model file) prints one line,
``core: error: ...``, and exits 1. ``--traceback`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from core.config import Config
from core.errors import ConfigError, CoreError

CONFIG_SUFFIXES = {".toml", ".json", ".yaml", ".yml"}


def config_for_target(target: str) -> Config:
    """A config file, or a model file/folder served with sensible defaults; then the
    ``CORE_<KEY>`` overrides of the environment, as ``hypercorn core.app:app`` applies them."""
    path = Path(target)
    if path.suffix.lower() in CONFIG_SUFFIXES:
        return Config.from_file(path).with_env()
    if not path.exists():
        raise ConfigError(f"{target}: no such config file or model path")
    return Config(
        name=path.stem if path.is_file() else path.name,
        storage_type="disk",
        storage_kwargs={"path_to_files": str(path)},
        binarization_type="auto",
    ).with_env()


def check_config(conf: Config) -> list[str]:
    """Everything ``validate`` proves without loading the model. Returns what it checked."""
    from core.ml import build
    from core.plugins import get_plugins
    from core.transformers import check_dtype_applies

    plugins = get_plugins()
    storage_cls = plugins.storages.get(conf.storage_type)
    checked = [f"storage {conf.storage_type!r} ({storage_cls.__module__}.{storage_cls.__name__})"]
    storage = build("storage", storage_cls, dict(conf.storage_kwargs), "storage_kwargs")
    storage.check()
    # storages that hand over a model object (LoadedFile.obj) need no binarizer
    in_memory = conf.storage_type == "memory" or getattr(storage_cls, "hands_over_objects", False)
    if not in_memory and conf.binarization_type != "auto":
        binarizer_cls = plugins.binarizers.get(conf.binarization_type)
        build("binarizer", binarizer_cls, dict(conf.binarization_kwargs), "binarization_kwargs")
        checked.append(f"binarizer {conf.binarization_type!r}")
    elif conf.binarization_type == "auto" and not in_memory:
        checked.append(_check_auto_binarizer(conf, plugins.binarizers))
    for key in ("data_transformer_for_predict", "data_transformer_for_predicted"):
        plugins.transformers.get(getattr(conf, key))
    check_dtype_applies(conf.data_transformer_for_predict, conf.dtype_for_predict)
    plugins.architectures.get(conf.mode)
    checked.append(f"transformers {conf.data_transformer_for_predict!r}/"
                   f"{conf.data_transformer_for_predicted!r}, mode {conf.mode!r}")
    return checked


def _check_auto_binarizer(conf: Config, binarizers: Any) -> str:
    """``auto`` picks the binarizer from the file at load time: the settings must fit one."""
    from core.ml import build

    if not binarizers.entries:
        raise ConfigError("binarization_type = 'auto' but no binarizer is installed "
                          "(pip install core-binarizer-pickle / core-binarizer-onnx)")
    fits, problems = [], []
    for name in binarizers.names():
        try:
            build("binarizer", binarizers.get(name), dict(conf.binarization_kwargs), "binarization_kwargs")
        except ConfigError as error:
            problems.append(f"{name}: {error}")
        else:
            fits.append(name)
    if not fits:
        raise ConfigError("binarization_kwargs fit no installed binarizer, so binarization_type = 'auto' "
                          "cannot load the model; " + "; ".join(problems))
    return f"binarizer 'auto' (binarization_kwargs fit {', '.join(fits)})"


def cmd_serve(args: argparse.Namespace) -> int:
    from hypercorn.asyncio import serve

    from core.app import ServeApp, configure_logging
    from core.up import UP

    if args.manifest:
        conf = _config_from_manifest(args.manifest).with_env()
    elif args.target:
        conf = config_for_target(args.target)
    else:
        conf = Config.from_env()
    flags = (("host", args.host), ("port", args.port), ("mode", args.mode), ("binarization_type", args.binarizer))
    overrides = {k: v for k, v in flags if v is not None}
    if overrides:
        conf = conf.replace(**overrides)
    configure_logging(conf.log_level)
    check_config(conf)
    hypercorn_config = UP(conf=conf).web.hypercorn_config()
    print(f"core: serving {conf.name!r} on http://{conf.host}:{conf.port}", file=sys.stderr)
    asyncio.run(serve(ServeApp(conf), hypercorn_config))  # type: ignore[arg-type]
    return 0


def _config_from_manifest(path: str) -> Config:
    try:
        from core_mlcomponent.manifest import config_from_manifest
    except ImportError:
        raise ConfigError("--manifest needs the MLComponent plugin: pip install core-mlcomponent") from None
    return config_from_manifest(path)


def load_config(conf: Config) -> list[str]:
    """Load the model as a server's start-up would (storage, binarizer, analysis, routes),
    then release it. Returns what was found: the model and the request's arguments."""
    from core.app import ServeApp

    up = ServeApp(conf).build()
    try:
        interface = up.ml.interface
        arguments = ", ".join(
            a.name + ("" if a.required else "?") for a in (interface.arguments if interface else ())
        )
        binarizer = f" with binarizer {up.ml.binarizer_name!r}" if up.ml.binarizer_name else ""
        return [f"loaded {type(up.ml.model_obj).__name__}{binarizer}; request: {arguments or 'no arguments'}"]
    finally:
        up.ml.close()


def cmd_validate(args: argparse.Namespace) -> int:
    conf = Config.from_file(args.config).with_env()
    checked = check_config(conf)
    if not args.no_load:
        checked += load_config(conf)
    print(f"{args.config}: ok ({'; '.join(checked)})")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from core.plugins import get_plugins

    infos = [p.to_dict() for p in get_plugins().info()]
    if args.json:
        print(orjson.dumps(infos, option=orjson.OPT_INDENT_2).decode())
        return 0
    for info in infos:
        dist = f"{info['distribution']} {info['version']}" if info["distribution"] else "built in"
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info["provides"].items())
        print(f"{info['name']:<16} {dist:<32} {provides or ', '.join(info['hooks'])}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="core", description="Serve a trained model over HTTP.")
    root.add_argument("--traceback", action="store_true", help="show tracebacks for errors")
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve a model (config file, or a model file/folder)")
    serve.add_argument("target", nargs="?", help="config file (.toml/.json/.yaml) or model path; "
                       "default: $CORE_CONFIG")
    serve.add_argument("--manifest", help="an MLComponent manifest (YAML)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--mode", help="architecture: directly_to_predict, worker_and_queue, batching")
    serve.add_argument("--binarizer", help="binarization_type: pickle, onnx... (default: auto, which "
                       "does not unpickle a file unless its sha256 is pinned)")
    serve.set_defaults(func=cmd_serve)

    validate = sub.add_parser("validate", help="check a config, then load its model as `serve` would")
    validate.add_argument("config")
    validate.add_argument("--no-load", action="store_true",
                          help="check the config, plugins and model path without loading the model")
    validate.set_defaults(func=cmd_validate)

    plugins = sub.add_parser("plugins", help="list the loaded plugins")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=cmd_plugins)
    return root


def main(argv: Sequence[str] | None = None) -> Any:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except CoreError as error:
        if args.traceback:
            raise
        print(f"core: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
