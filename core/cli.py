"""The ``core`` command: ``serve``, ``validate``, ``plugins``, and the commands plugins add.

A user mistake (bad config, unknown plugin, missing model file, taken port) prints one line,
``core: error: ...`` (or ``core: cannot start: ...`` once the model loads), and exits 1.
``--traceback`` shows the full traceback instead. Plugins extend the command line through
three hooks (:mod:`core.hookspecs`): ``register_commands`` adds subcommands,
``register_serve_options`` adds options to ``serve`` and ``validate``, and
``config_from_options`` turns those options into the config to serve.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from core.config import CONFIG_ENV, Config
from core.errors import ConfigError, CoreError, PluginError
from core.supervisor import DEFAULT_SERVER, EXIT_CRASH_LOOP, SERVERS, CrashLoop, check_server

CONFIG_SUFFIXES = {".toml", ".json", ".yaml", ".yml"}
#: Options that plugins of this repository add, and what to install to get them: a missing
#: plugin's option is one line naming its package (core imports no plugin).
PLUGIN_OPTIONS: dict[str, tuple[str, str]] = {
    "--manifest": ("the MLComponent plugin", "core-mlcomponent"),
}


def config_for_target(target: str) -> Config:
    """A config file, or a model file/folder served with sensible defaults; then the
    ``CORE_<KEY>`` overrides of the environment, as ``hypercorn core.app:app`` applies them."""
    path = Path(target)
    suffix = path.suffix.lower()
    if suffix in CONFIG_SUFFIXES and not (suffix == ".json" and recognised_model(path)):
        return Config.from_file(path).with_env()
    if not path.exists():
        raise ConfigError(f"{target}: no such config file or model path")
    return Config(
        name=path.stem if path.is_file() else path.name,
        storage_type="disk",
        storage_kwargs={"path_to_files": str(path)},
        binarization_type="auto",
    ).with_env()


def recognised_model(path: Path) -> str | None:
    """The installed binarizer that recognises the file ``path`` by its content, or None.

    A ``.json`` target is a config, unless a binarizer says it is a model (XGBoost saves its
    models as JSON): ``core serve model.json`` then serves it, as it serves ``model.onnx``.
    A binarizer whose ``detect`` fails does not decide.
    """
    if not path.is_file():
        return None
    from core.components import LoadedFile
    from core.plugins import get_plugins

    file = LoadedFile(path=str(path))
    binarizers = get_plugins().binarizers
    for name in binarizers.names():
        try:
            score, _ = binarizers.entries[name].cls.detect(file)  # type: ignore[attr-defined]
        except Exception:  # a plugin's bug must not turn a config into a model
            continue
        if score > 0:
            return name
    return None


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
    in_memory = storage_cls.hands_over_objects
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
    if conf.is_long_predict:
        store_cls = plugins.result_stores.get(conf.result_store_type)
        build("result store", store_cls, dict(conf.result_store_kwargs), "result_store_kwargs")
        checked.append(f"result store {conf.result_store_type!r}")
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
    from core.app import configure_logging
    from core.supervisor import Supervisor, bind, serve_in_process
    from core.up import UP

    conf = config_from_args(args)
    flags = (("host", args.host), ("port", args.port), ("mode", args.mode), ("binarization_type", args.binarizer))
    overrides = {k: v for k, v in flags if v is not None}
    if overrides:
        conf = conf.replace(**overrides)
    crash_settings = (("max_deaths", args.max_worker_deaths), ("window", args.worker_deaths_window))
    crash_loop = CrashLoop(**{k: v for k, v in crash_settings if v is not None})
    if not args.workers and crash_loop != CrashLoop():
        raise ConfigError("--max-worker-deaths and --worker-deaths-window apply to worker processes: "
                          "add --workers N")
    check_server(args.server)
    configure_logging(conf.log_level, conf.log_format)
    check_config(conf)
    hypercorn_config = UP(conf=conf).web.hypercorn_config()
    sockets = bind(hypercorn_config)  # a taken port is one line, before the model loads
    if args.workers:
        return Supervisor(conf, hypercorn_config, sockets, args.workers, crash_loop, args.server).run()
    return serve_in_process(conf, hypercorn_config, sockets, args.server)


def config_from_args(args: argparse.Namespace) -> Config:
    """What ``serve`` and ``validate`` serve: a plugin's options (``--manifest``...), else the
    config file or model path, else ``$CORE_CONFIG``; the environment's ``CORE_<KEY>`` over it."""
    from core.plugins import get_plugins

    given: list[tuple[str, Config]] = []  # (the plugin's options, its config)
    for impl in _call_order(get_plugins().hook.config_from_options):
        conf = impl.function(**_arguments(impl, options=args))
        if conf is not None:
            if not isinstance(conf, Config):
                raise PluginError(f"plugin {impl.plugin_name!r}: config_from_options returned "
                                  f"{type(conf).__name__}, not a core.Config")
            options = [option for option, _dest in args.plugin_options.get(impl.plugin_name, [])]
            given.append((" / ".join(options or [f"an option of plugin {impl.plugin_name!r}"]), conf))
    if len(given) > 1:
        raise ConfigError(f"{given[0][0]} and {given[1][0]} both say what to serve; give one")
    if given:
        if args.target:
            raise ConfigError(f"{args.target} and {given[0][0]} both say what to serve; give one")
        return given[0][1].with_env()
    return config_for_target(args.target) if args.target else Config.from_env()


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
    conf = config_from_args(args)
    checked = check_config(conf)
    if not args.no_load:
        checked += load_config(conf)
    print(f"{_what(args)}: ok ({'; '.join(checked)})")
    return 0


def _what(args: argparse.Namespace) -> str:
    """What ``validate`` checked, as the user named it."""
    for options in args.plugin_options.values():
        for _option, dest in options:
            value = getattr(args, dest, None)
            if value is not None:
                return str(value)
    return args.target or os.environ.get(CONFIG_ENV) or "the environment's config"


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


def _add_target_options(command: argparse.ArgumentParser) -> None:
    """What to serve, the same for ``serve`` and ``validate``."""
    command.add_argument("target", nargs="?", help="config file (.toml/.json/.yaml) or model file/folder "
                         "(a .json an installed binarizer recognises is a model); default: $CORE_CONFIG")


def parser() -> argparse.ArgumentParser:
    """The ``core`` command line, with the commands and options plugins add."""
    root = argparse.ArgumentParser(prog="core", description="Serve a trained model over HTTP.")
    root.add_argument("--traceback", action="store_true", help="show tracebacks for errors")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve a model (config file, or a model file/folder)")
    _add_target_options(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--mode", help="architecture: directly_to_predict, worker_and_queue, batching")
    serve.add_argument("--binarizer", help="binarization_type: pickle, onnx... (default: auto, which "
                       "does not unpickle a file unless its sha256 is pinned)")
    serve.add_argument("--server", choices=list(SERVERS), default=DEFAULT_SERVER,
                       help=f"the HTTP server (default {DEFAULT_SERVER}; uvicorn is faster: "
                       "pip install 'core[uvicorn]')")
    workers = serve.add_argument_group("worker processes")
    workers.add_argument("--workers", type=_count, metavar="N", help="serve from N processes; one that "
                         "dies is replaced (default: serve from this process)")
    workers.add_argument("--max-worker-deaths", type=_count, metavar="K",
                         help=f"stop (exit {EXIT_CRASH_LOOP}) when more than K workers die within the "
                         f"window (default {CrashLoop().max_deaths})")
    workers.add_argument("--worker-deaths-window", type=_seconds, metavar="SECONDS",
                         help=f"the window of --max-worker-deaths (default {CrashLoop().window:g})")
    serve.set_defaults(func=cmd_serve)

    validate = commands.add_parser("validate", help="check a config, then load its model as `serve` would")
    _add_target_options(validate)
    validate.add_argument("--no-load", action="store_true",
                          help="check the config, plugins and model path without loading the model")
    validate.set_defaults(func=cmd_validate)

    plugins = commands.add_parser("plugins", help="list the loaded plugins")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=cmd_plugins)

    _add_plugin_commands(commands)
    for command in (serve, validate):
        command.set_defaults(plugin_options=_add_plugin_options(command))
    return root


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _call_order(caller: Any) -> list[Any]:
    """A hook's implementations in the order pluggy calls them."""
    return list(reversed(caller.get_hookimpls()))


def _arguments(impl: Any, **available: Any) -> dict[str, Any]:
    """The hook's arguments that ``impl`` accepts (pluggy lets it take any subset)."""
    return {name: available[name] for name in impl.argnames}


def _add_plugin_commands(commands: Any) -> None:
    """``register_commands``, one plugin at a time, so that a clash names the plugin."""
    from core.plugins import get_plugins

    for impl in _call_order(get_plugins().hook.register_commands):
        before = dict(commands.choices)
        try:
            impl.function(**_arguments(impl, commands=commands))
        except argparse.ArgumentError as error:
            raise PluginError(f"plugin {impl.plugin_name!r} (register_commands): {error}") from None
        taken = [name for name, command in before.items() if commands.choices[name] is not command]
        if taken:  # Python 3.10's argparse replaces a command silently
            raise PluginError(f"plugin {impl.plugin_name!r} (register_commands): conflicting "
                              f"subparser: {taken[0]}")


def _add_plugin_options(command: argparse.ArgumentParser) -> dict[str, list[tuple[str, str]]]:
    """``register_serve_options`` for ``command``, one plugin at a time; returns the options
    each plugin added, with their ``dest`` (``{"mlcomponent": [("--manifest", "manifest")]}``)."""
    from core.plugins import get_plugins

    added: dict[str, list[tuple[str, str]]] = {}
    for impl in _call_order(get_plugins().hook.register_serve_options):
        before = len(command._actions)
        try:
            impl.function(**_arguments(impl, parser=command))
        except argparse.ArgumentError as error:
            raise PluginError(f"plugin {impl.plugin_name!r} (register_serve_options): {error}") from None
        added[impl.plugin_name] = [(action.option_strings[-1] if action.option_strings else action.dest,
                                    action.dest) for action in command._actions[before:]]
    return added


def main(argv: Sequence[str] | None = None) -> Any:
    """Run ``core``; the exit code: 0, 1 (a mistake, or start-up failed: one line naming the
    fix), 2 (the command line), 3 (worker processes kept dying)."""
    traceback_wanted = "--traceback" in (sys.argv[1:] if argv is None else argv)
    try:
        cli = parser()
        args, unknown = cli.parse_known_args(argv)
        if unknown:
            _unknown_arguments(cli, unknown)
        return args.func(args)
    except CoreError as error:
        if traceback_wanted:
            raise
        print(f"core: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`core plugins | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a bug, not a mistake: the line, then where it happened
        if traceback_wanted:
            raise
        print(f"core: error: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        return 1


def _unknown_arguments(cli: argparse.ArgumentParser, unknown: list[str]) -> None:
    """An option of a plugin that is not installed is one line naming its package; anything
    else is argparse's usual error (exit 2)."""
    for argument in unknown:
        needs = PLUGIN_OPTIONS.get(argument.split("=", 1)[0])
        if needs is not None:
            print(f"core: error: {argument.split('=', 1)[0]} needs {needs[0]}: pip install {needs[1]}",
                  file=sys.stderr)
            raise SystemExit(2)
    cli.error(f"unrecognized arguments: {' '.join(unknown)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
