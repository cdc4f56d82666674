"""Every hook a ``core`` plugin can implement.

The order in which they fire during a server's life::

    the core command line (core serve, core validate, any plugin command)
      register_commands      <- argparse subcommands  plugins add whole commands
      register_serve_options <- argparse options      plugins add options saying what to serve
      config_from_options    -> Config                the parsed options become the config
    start-up
      register_storages / register_binarizers /      plugins name what they provide
      register_transformers / register_architectures /
      register_result_stores
      storage_load           -> list[LoadedFile]      the storage brings the model's files
      binarizer_deserialize  -> model object          the binarizer turns them into a model
      (model analysis: predict method, arguments, request schema)
      register_routes        -> extra HTTP routes
      extend_openapi         -> their OpenAPI paths and schemas
      register_metrics       <- a prometheus_client registry   plugins add metrics (metrics = true)
      register_tracer        -> Tracer | None         a plugin traces each request (core.tracing)
    each request to a prediction route (POST /predict, a plugin's), behind the admission gate
      transformer_to_model   -> model-format value    once per predict argument
      architecture_predict   -> awaitable result      the architecture runs the model
      transformer_from_model -> JSON-ready value      once per prediction
    each GET /info
      extend_info            -> extra sections

The ``register_*`` hooks fill the host's registries: a plugin hands over a class under a
name, and the host refuses two plugins that claim one name. The four life-cycle hooks
(``storage_load``, ``binarizer_deserialize``, ``transformer_to_model``/``from_model``,
``architecture_predict``) are ``firstresult``: the built-in plugin ``core.builtin`` answers
them by calling the chosen component, and a plugin may wrap them (``wrapper=True``) to
observe, time, cache or replace that step for every component at once.

The three request-path hooks are looked up when the model settings load
(``up.ml.load_model_settings()``) and the web app is built (``up.web.load()``): while
``core.builtin`` is their only implementation, core calls the component's method directly,
the same answer without a hook dispatch per request. A plugin registered later takes effect
at the next of those calls.

Hooks are always called with keyword arguments, so an implementation may accept any subset of
a spec's arguments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from prometheus_client import CollectorRegistry
    from starlette.routing import BaseRoute

    from core.analysis import Argument
    from core.components import Architecture, Binarizer, LoadedFile, Storage, Transformer
    from core.config import Config
    from core.http import Service
    from core.tracing import Tracer

PROJECT = "core"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``register(name, cls)``, the callback every ``register_*`` hook receives. ``cls`` may be
#: given as ``"package.module:Class"``: it is imported the first time a config names it, so a
#: plugin whose component needs a heavy library does not import it for every ``core`` command.
Register = Callable[[str, "type | str"], None]


@hookspec
def register_storages(register: Register) -> None:
    """Name the storages this plugin provides.

    Called once while the plugin manager is built, before any config is read.

    :param register: call ``register("name", StorageClass)`` for each storage, where
        ``StorageClass`` subclasses :class:`core.Storage`. The name is what users write in
        ``storage_type``. Two plugins registering one name is a start-up error naming both.
    """


@hookspec
def register_binarizers(register: Register) -> None:
    """Name the binarizers this plugin provides.

    Called once while the plugin manager is built.

    :param register: call ``register("name", BinarizerClass)`` for each binarizer, where
        ``BinarizerClass`` subclasses :class:`core.Binarizer`. The name is what users write in
        ``binarization_type``; ``"auto"`` is reserved.
    """


@hookspec
def register_transformers(register: Register) -> None:
    """Name the data transformers this plugin provides.

    Called once while the plugin manager is built.

    :param register: call ``register("name", TransformerClass)`` for each transformer, where
        ``TransformerClass`` subclasses :class:`core.Transformer`. The name is what users write
        in ``data_transformer_for_predict`` / ``data_transformer_for_predicted``.
    """


@hookspec
def register_architectures(register: Register) -> None:
    """Name the serving architectures this plugin provides.

    Called once while the plugin manager is built.

    :param register: call ``register("name", ArchitectureClass)`` for each architecture,
        where ``ArchitectureClass`` subclasses :class:`core.Architecture`. The name is what
        users write in ``mode``.
    """


@hookspec
def register_result_stores(register: Register) -> None:
    """Name the result stores this plugin provides.

    Called once while the plugin manager is built.

    :param register: call ``register("name", ResultStoreClass)`` for each result store, where
        ``ResultStoreClass`` subclasses :class:`core.components.ResultStore`. The name is what
        users write in ``result_store_type``; core registers ``local`` (every worker process of
        one server, :mod:`core.results`). A result store keeps long predictions' answers
        (``is_long_predict``) where every worker process that shares it can fetch them; it is
        built from ``result_store_kwargs`` in each worker process, when the web app is built.
    """


@hookspec(firstresult=True)
def storage_load(storage: Storage) -> list[LoadedFile] | None:
    """Bring the model's files from ``storage``.

    Called once per model load (``up.ml.load()``, server start-up), before deserialization.
    The built-in implementation returns ``storage.load()``.

    :param storage: the configured storage, already built from ``storage_kwargs``.
    :return: the files found, each a :class:`core.LoadedFile`; or ``None`` to let the next
        implementation answer.
    """


@hookspec(firstresult=True)
def binarizer_deserialize(binarizer: Binarizer, files: list[LoadedFile]) -> Any:
    """Turn the loaded files into a model object.

    Called once per model load, right after :func:`storage_load`, unless the storage already
    handed over an in-memory object (``LoadedFile.obj``). The raw bytes of ``files`` are
    released after this hook returns. The built-in implementation returns
    ``binarizer.deserialize(files)``.

    :param binarizer: the binarizer chosen by ``binarization_type`` (or detected by ``auto``).
    :param files: what the storage returned.
    :return: the model object; ``None`` lets the next implementation answer.
    """


@hookspec(firstresult=True)
def transformer_to_model(transformer: Transformer, data: Any, argument: Argument) -> Any:
    """Convert one validated request argument into the form the model expects.

    Called for every array argument of every prediction, on the request path. The built-in
    implementation returns ``transformer.to_model(data, argument)``.

    :param transformer: the transformer named by ``data_transformer_for_predict``.
    :param data: the validated JSON value of the argument (lists, numbers, strings).
    :param argument: what model analysis found about the argument (name, dtype, shape).
    :return: the value to pass to the model; ``None`` lets the next implementation answer.
    """


@hookspec(firstresult=True)
def transformer_from_model(transformer: Transformer, data: Any) -> Any:
    """Convert what the model returned into a JSON-serialisable value.

    Called once per prediction. The built-in implementation returns
    ``transformer.from_model(data)``.

    :param transformer: the transformer named by ``data_transformer_for_predicted``.
    :param data: the model's raw return value.
    :return: a value ``orjson`` can serialise (numpy arrays are allowed); ``None`` lets the
        next implementation answer.
    """


@hookspec(firstresult=True)
def architecture_predict(
    architecture: Architecture, data: dict[str, Any], predict_id: str
) -> Awaitable[Any] | None:
    """Run one validated prediction request through the serving architecture.

    Called once per admitted prediction request (``POST /predict`` and every plugin route
    that predicts through the admission gate), after validation and throttling. The built-in
    implementation returns ``architecture.predict(data, predict_id=predict_id)``.

    :param architecture: the architecture chosen by ``mode``.
    :param data: the validated request, one entry per predict argument.
    :param predict_id: the id sent back in the ``X-Predict-Id`` header.
    :return: an awaitable resolving to the JSON-ready result; ``None`` lets the next
        implementation answer.
    """


@hookspec
def register_routes(service: Service) -> list[BaseRoute] | None:
    """Add HTTP routes to the web app.

    Called each time the web app is built (``up.web.load()``), after the model is loaded and
    analysed and the architecture is created.

    :param service: the served model as routes see it (:class:`core.http.Service`): its
        settings (``service.conf``), the model object, its analysed interface, core's request
        validation, the probes, and the admission gate. A route that runs the model must be
        mounted behind the gate: ``service.gate.route(path, handler)``, where
        ``handler(admission)`` predicts with ``await admission.predict(data)``.
    :return: Starlette routes to mount beside ``/predict``, or ``None``. Starlette tries
        routes in order: core's first, then the plugins'; a catch-all (a path with a
        ``{name:path}`` parameter) is tried after every other route, so that one plugin's
        fallback never hides another plugin's routes.
    """


@hookspec
def extend_info(service: Service) -> dict[str, Any] | None:
    """Add sections to ``GET /info``.

    Called on every ``/info`` request, after the model is loaded and the web app is built.

    :param service: the served model (see :func:`register_routes`).
    :return: a dict whose keys become top-level keys of the ``/info`` answer (choose a key
        named after your plugin), or ``None``.
    """


@hookspec
def extend_openapi(service: Service) -> dict[str, Any] | None:
    """Describe a plugin's own routes in the OpenAPI document.

    Called once each time the web app is built (``up.web.load()``), after
    :func:`register_routes`.

    :param service: the served model (see :func:`register_routes`).
    :return: ``{"paths": {...}, "components": {"schemas": {...}}}`` merged into
        ``/openapi.json``, or ``None``.
    """


@hookspec
def register_metrics(registry: CollectorRegistry, service: Service) -> None:
    """Add Prometheus metrics of your own to ``/metrics``.

    Called each time the web app is built (``up.web.load()``) with ``metrics = true``, after
    :func:`register_routes`, in every worker process.

    :param registry: create your metrics on it with ``prometheus_client``:
        ``Counter("myplugin_files_total", "Files received.", registry=registry)``, keep them
        (on your plugin's object, or in a dict keyed by ``id(service)``) and update them from
        your routes. With several worker processes core runs prometheus_client in multiprocess
        mode: each process writes its values to a shared directory and ``/metrics`` adds them
        up, so a ``Gauge`` needs a ``multiprocess_mode`` (``"livesum"``, ``"livemax"``...;
        see prometheus_client's documentation); counters and histograms need nothing more.
        Prefix the names with your plugin's name: ``core_`` is core's.
    :param service: the served model (see :func:`register_routes`).
    """


@hookspec
def register_tracer(service: Service) -> Tracer | None:
    """Trace the requests of ``service``: return a :class:`core.tracing.Tracer`, or ``None``.

    Called each time the web app is built (``up.web.load()``), after :func:`register_metrics`,
    in every worker process. The admission gate then calls ``tracer.start(...)`` when each
    request to a prediction route arrives (core's ``POST /predict``, a plugin's gated routes),
    the architecture and the gate record the request's phases (``read``, ``validate``,
    ``queue``, ``predict``, ``respond``) on the :class:`core.tracing.RequestTrace` it returns,
    and the gate ends it with the status answered; while the request is handled,
    :data:`core.tracing.TRACE` holds it and every log line carries its ``trace_id``. See
    :mod:`core.tracing` for the protocol and when each phase is recorded.

    With no plugin returning a tracer, core does no tracing work at all. At most one plugin
    may return one: two are a start-up error naming both (uninstall one, or disable one with
    ``CORE_LOAD_PLUGINS``).

    :param service: the served model (see :func:`register_routes`): ``service.name`` is a
        good default for the traced service's name.
    :return: the tracer, or ``None`` to leave this service untraced.
    """


@hookspec
def register_config_sections() -> list[str] | None:
    """Name the tables of a config file that your plugin reads (``[ray]``, say).

    Core's :class:`~core.config.Config` refuses a key it does not know. A table named here is
    left out of it instead (core does not use it: ``core serve`` serves the file as if the
    table were not there), so that one config file serves under ``core serve`` and under your
    command. Read the table yourself from the file (:func:`core.config.read_config_file`) and
    check its keys: an unknown one should be a :class:`core.errors.ConfigError` line.

    :return: the table names. A name another plugin already claimed, or one of core's config
        keys, is a :class:`~core.errors.PluginError` naming both.
    """


@hookspec
def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add subcommands to the ``core`` command line (``core <yours> ...``).

    Called once each time the command line is built: at every run of ``core``, before it
    parses its arguments (so also for ``core --help``, which lists your commands).

    :param commands: the object ``argparse.ArgumentParser.add_subparsers()`` returned. Call
        ``commands.add_parser("name", help="...")``, add the command's arguments to the parser
        it returns, and ``set_defaults(func=run)``: ``core`` then calls
        ``run(args: argparse.Namespace)`` and exits with the ``int`` it returns. Raise
        :class:`core.errors.CoreError` (e.g. ``ConfigError``) for a mistake the user can fix:
        ``core`` prints it as one line and exits 1. A name another command already has is an
        error naming your plugin.
    """


@hookspec
def register_serve_options(parser: argparse.ArgumentParser) -> None:
    """Add options that say what to serve to ``core serve`` and ``core validate``.

    Called each time the command line is built, once with ``core serve``'s parser and once
    with ``core validate``'s (``parser.prog`` tells which), so that ``core validate`` checks
    exactly what ``core serve`` would serve. Your options show in ``core serve --help`` only
    while your plugin is installed; turn them into a config in :func:`config_from_options`.

    :param parser: the command's ``argparse.ArgumentParser``; call ``parser.add_argument``
        with ``--long-names`` (``default=None``, so that :func:`config_from_options` can tell
        when an option was not given). An option another plugin or ``core`` already has is an
        error naming your plugin.
    """


@hookspec
def config_from_options(options: argparse.Namespace) -> Config | None:
    """Build the config to serve from the options your plugin added.

    Called by ``core serve`` and ``core validate`` once their arguments are parsed, before
    the config file or model path argument is read.

    :param options: the parsed command line; your options are attributes named as argparse
        names them (``--manifest`` -> ``options.manifest``).
    :return: the :class:`core.Config` to serve when one of your options was given, else
        ``None``. The environment's ``CORE_<KEY>`` settings and ``core serve``'s
        ``--host``/``--port``/``--mode``/``--binarizer`` apply over it, as over a config
        file. Giving a config file or model path as well, or options of two plugins that
        each return a config, is an error naming the options. Raise
        :class:`core.errors.ConfigError` with one line naming the file and the field for a
        mistake in what your options point at.
    """
