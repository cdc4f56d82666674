"""Logging: one format for every line of a server, the predict id on the lines of a request,
and the access line.

* **The predict id.** The admission gate (:mod:`core.http.gate`) sets :data:`PREDICT_ID` for
  the request it handles; the thread pool runs each model call in a copy of the request's
  context (:mod:`core.runner`), so every line logged while the request is handled (core's, a
  plugin's, the model's own ``logging`` calls) carries its id. :class:`RequestContext` puts it
  on each record as ``record.predict_id`` (``None`` outside a request); add it to a handler of
  your own to use ``%(predict_id)s`` in its format.
* **The trace id.** With a tracing plugin (:mod:`core.tracing`), the gate also sets
  :data:`TRACE_ID` for a request; :class:`RequestContext` puts it on each record as
  ``record.trace_id`` (``None`` without one), the ``json`` format writes it as ``trace_id`` and
  the ``text`` format as ``[<predict id> trace=<trace id>]``, so a log line leads to its trace.
* **The format** (``log_format``): ``text`` is hypercorn's own,
  ``[2026-01-31 12:00:00 +0000] [4242] [INFO] message``, with ``[<predict id>]`` after the
  level on the lines of a request (``[<predict id> trace=<trace id>]`` on a traced one);
  ``json`` writes every line as one JSON object (``time``, ``level``, ``logger``, ``process``,
  ``message``, ``predict_id``, ``trace_id``, ``traceback``, and the access line's fields).
* **Whose lines.** :func:`configure_logging` gives the root logger one handler on stderr,
  unless the application hosting core configured logging already: core's lines, the model's
  and hypercorn's all go through it. hypercorn's loggers (``hypercorn.error`` and, when
  turned on, ``hypercorn.access``) keep the destinations hypercorn gave them
  (``--error-logfile``, ``--access-logfile``), written in core's format.
* **The access line** (``access_log``, on by default): one line per request to a route that
  runs the model, on the ``core.access`` logger, once it is answered
  (:func:`log_access`): ``POST /predict 200 1.84 ms 3 rows``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import orjson

#: The predict id of the request being handled (None outside a request). In ``batching``, a
#: model call serves several requests: its lines carry their ids joined by commas.
PREDICT_ID: ContextVar[str | None] = ContextVar("core_predict_id", default=None)
#: The trace id (32 hex digits) of the request being handled, when a tracing plugin traces it
#: (:mod:`core.tracing`); None otherwise. In ``batching``, a model call's lines carry the trace
#: ids of its requests joined by commas.
TRACE_ID: ContextVar[str | None] = ContextVar("core_trace_id", default=None)

#: What ``log_format`` takes.
LOG_FORMATS = ("text", "json")
#: hypercorn's line format (``hypercorn.logging``), the process id included.
TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
#: hypercorn's date format: ``[2026-01-31 12:00:00 +0000]``.
DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"
#: The loggers of hypercorn that :func:`configure_logging` writes in core's format.
HYPERCORN_LOGGERS = ("hypercorn.error", "hypercorn.access")

access_logger = logging.getLogger("core.access")


def current_predict_id() -> str | None:
    """The predict id of the request being handled here, or None."""
    return PREDICT_ID.get()


class RequestContext(logging.Filter):
    """A handler filter: ``record.predict_id`` is the id of the request the line was logged
    for (None outside a request), ``record.trace_id`` its trace id (None when it is not
    traced). Lines are formatted in the thread that logged them, where the request's context
    is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "predict_id"):
            record.predict_id = PREDICT_ID.get()
            record.trace_id = TRACE_ID.get()
        return True


REQUEST_CONTEXT = RequestContext()


class TextFormatter(logging.Formatter):
    """hypercorn's format, ``[date] [pid] [LEVEL] message``, with ``[<predict id>]`` before
    the message on the lines of a request (``[<predict id> trace=<trace id>]`` on a traced
    one); a traceback follows on the next lines."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, DATE_FORMAT)
        self._second = -1
        self._date = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.date(record.created)

    def date(self, created: float) -> str:
        """``[2026-01-31 12:00:00 +0000]`` for the time ``created`` (local time, as hypercorn)."""
        second = int(created)  # the date has no fraction of a second: one strftime a second
        if second != self._second:
            self._date = time.strftime(DATE_FORMAT, self.converter(created))
            self._second = second
        return self._date

    def formatMessage(self, record: logging.LogRecord) -> str:
        return self.line(record.asctime, record.process, record.levelname,
                         getattr(record, "predict_id", None), record.message,
                         getattr(record, "trace_id", None))

    @staticmethod
    def line(date: str, process: int | None, level: str, predict_id: str | None, message: str,
             trace_id: str | None = None) -> str:
        head = f"{date} [{process}] [{level}] "
        if not predict_id:
            return head + message
        if trace_id:
            return f"{head}[{predict_id} trace={trace_id}] {message}"
        return f"{head}[{predict_id}] {message}"


class JSONFormatter(logging.Formatter):
    """Each line as one JSON object: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``process``, ``message``; ``predict_id`` on the lines of a request and ``trace_id`` on those
    of a traced one; ``traceback`` for an
    error logged with one; the access line's fields (``method``, ``route``, ``status``,
    ``duration_ms``, ``rows``, ``request_id``)."""

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "access", None)
        entry = self.entry(record.created, record.levelname, record.name, record.process,
                           record.getMessage(), getattr(record, "predict_id", None),
                           access if isinstance(access, dict) else None,
                           getattr(record, "trace_id", None))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()

    @staticmethod
    def entry(created: float, level: str, logger: str, process: int | None, message: str,
              predict_id: str | None, fields: dict[str, Any] | None,
              trace_id: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": logger,
            "process": process,
            "message": message,
        }
        if predict_id:
            entry["predict_id"] = predict_id
        if trace_id:
            entry["trace_id"] = trace_id
        if fields is not None:
            entry.update(fields)
        return entry


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``log_format`` (``text`` or ``json``)."""
    return JSONFormatter() if log_format == "json" else TextFormatter()


#: The handler :func:`configure_logging` installed on the root logger (None: the application
#: hosting core configured logging itself).
_handler: logging.StreamHandler[Any] | None = None
#: The format of its lines.
_format = "text"


class _Adopt(logging.Filter):
    """On a hypercorn logger: its handlers (which hypercorn creates when it first logs) write
    in core's format, and a logger with handlers of its own does not pass its lines on to the
    root logger too (they would be written twice)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        handler = _handler
        if handler is not None and self.logger.handlers:
            self.logger.propagate = False
            for own in self.logger.handlers:
                if own.formatter is not handler.formatter:
                    own.setFormatter(handler.formatter)
                    own.addFilter(REQUEST_CONTEXT)
        return True


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Write every line of the process in ``log_format`` on stderr, from ``level`` up.

    Unless the application hosting core configured logging already (the root logger or the
    ``core`` logger has a handler; then only the ``core`` logger's level is set), the root
    logger gets one handler on stderr, so that core's lines, the model's and hypercorn's are
    written alike. Calling it again changes the level and the format.
    """
    global _handler, _format
    root = logging.getLogger()
    core_logger = logging.getLogger("core")
    if _handler is None and not root.handlers and not core_logger.handlers:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.addFilter(REQUEST_CONTEXT)
        root.addHandler(_handler)
        for name in HYPERCORN_LOGGERS:
            hypercorn_logger = logging.getLogger(name)
            if not any(isinstance(f, _Adopt) for f in hypercorn_logger.filters):
                hypercorn_logger.addFilter(_Adopt(hypercorn_logger))
    if _handler is not None and _handler in root.handlers:
        _format = log_format
        _handler.setFormatter(formatter(log_format))
        root.setLevel(level.upper())
    core_logger.setLevel(level.upper())


def announce(line: str) -> None:
    """A line for whoever runs the server (``core: serving 'iris' on http://...``): printed on
    stderr as it is with ``log_format = "text"`` (what scripts wait for), and a JSON line like
    every other with ``"json"``."""
    if _format == "json" and _handler is not None:  # written whatever log_level says, as print would
        core_logger = logging.getLogger("core")
        _handler.handle(core_logger.makeRecord("core", logging.INFO, __file__, 0, "%s", (line,), None))
        return
    print(line, file=sys.stderr, flush=True)


def log_access(method: str, route: str, status: int, seconds: float, rows: int | None,
               request_id: str | None = None) -> None:
    """Write the access line of a request that was answered: ``POST /predict 200 1.84 ms 3
    rows`` (with ``log_format = "json"``, the same as fields).

    A log record costs more than the rest of the line: building it (``LogRecord`` looks up
    the thread, the process name, the file name...), then the handler chain. When the line can
    only go to the handler :func:`configure_logging` installed (nobody added a handler or a
    filter on the way, see :func:`_direct_handler`), it is written the way that handler would
    write it, byte for byte, without a record; otherwise it goes through ``logging``.
    """
    if not access_logger.isEnabledFor(logging.INFO):
        return
    message = f"{method} {route} {status} {seconds * 1000:.2f} ms {'-' if rows is None else rows} rows"
    handler = _direct_handler()
    if handler is not None:
        created = time.time()
        predict_id = PREDICT_ID.get()
        trace_id = TRACE_ID.get()
        formatter = handler.formatter
        if isinstance(formatter, TextFormatter):
            line = formatter.line(formatter.date(created), _pid(), "INFO", predict_id, message, trace_id)
        else:
            line = orjson.dumps(JSONFormatter.entry(created, "INFO", access_logger.name, _pid(), message,
                                                    predict_id, _access_fields(method, route, status, seconds,
                                                                               rows, request_id),
                                                    trace_id), default=str).decode()
        try:
            _write_line(handler, line + handler.terminator)
        except Exception:  # a closed stream...: written through logging below, which reports it
            pass
        else:
            return
    # made here rather than by access_logger.info(): the caller's frame says nothing of use,
    # and looking it up is most of a record's cost, paid once per request
    record = access_logger.makeRecord(access_logger.name, logging.INFO, __file__, 0, "%s", (message,), None,
                                      None, {"access": _access_fields(method, route, status, seconds, rows,
                                                                      request_id)})
    access_logger.handle(record)


def _access_fields(method: str, route: str, status: int, seconds: float, rows: int | None,
                   request_id: str | None) -> dict[str, Any]:
    """The access line's fields, as ``log_format = "json"`` writes them."""
    fields: dict[str, Any] = {"method": method, "route": route, "status": status,
                              "duration_ms": round(seconds * 1000, 3), "rows": rows}
    if request_id is not None:
        fields["request_id"] = request_id
    return fields


def _write_line(handler: logging.StreamHandler[Any], line: str) -> None:
    """Write ``line`` where ``handler`` writes, as its ``emit`` would.

    On a stream with a file descriptor (stderr, as :func:`configure_logging` sets it up), the
    line is one ``os.write``: no lock, no text buffer and no separate flush. The handler's
    stream is line-buffered and flushed after every record, so nothing it holds is passed;
    a line is written by one system call, so lines from several threads never mix (for a
    pipe, up to ``PIPE_BUF``, 4 KiB, as an access line is). Any other stream (a test's
    ``StringIO``) is written through, under the handler's lock.
    """
    stream = handler.stream
    fd = _fileno(stream)
    if fd is not None:
        data = line.encode(stream.encoding, stream.errors)
        written = 0
        try:
            written = os.write(fd, data)
            while written < len(data):  # an interrupted or non-blocking write: the rest
                written += os.write(fd, data[written:])
            return
        except OSError:  # the rest through the stream
            line = data[written:].decode(stream.encoding, stream.errors)
    with handler.lock:  # type: ignore[union-attr]  # a handler's lock, made in its __init__
        stream.write(line)
        stream.flush()


def _fileno(stream: Any) -> int | None:
    """``stream``'s file descriptor, when the stream keeps nothing back from it; asked each
    time (not remembered), so that a stream closed since (a test's capture file) is never
    written to by the number its descriptor had."""
    try:
        if stream.line_buffering or stream.write_through:
            fd: int = stream.fileno()
            return fd
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        pass
    return None


_core_logger = logging.getLogger("core")
_root_logger = logging.getLogger()


def _direct_handler() -> logging.StreamHandler[Any] | None:
    """The handler :func:`configure_logging` installed, when an access line can go nowhere
    else and nothing would change it on the way: the root logger has that handler alone,
    neither ``core.access`` nor ``core`` has a handler or a filter (nor the root logger a
    filter), the handler has only its own filter, a level that lets INFO pass, and core's
    formatter. Otherwise None: the line goes through ``logging``."""
    handler = _handler
    if (handler is None or _root_logger.handlers != [handler] or access_logger.handlers
            or _core_logger.handlers or access_logger.filters or _core_logger.filters
            or _root_logger.filters or handler.filters != [REQUEST_CONTEXT]
            or handler.level > logging.INFO or type(handler.formatter) not in _OWN_FORMATTERS
            or not access_logger.propagate or not _core_logger.propagate):
        return None
    return handler


_OWN_FORMATTERS = (TextFormatter, JSONFormatter)


def _pid() -> int | None:
    """This process's id, as ``record.process`` has it."""
    return _process_id if logging.logProcesses else None


def _forked() -> None:
    global _process_id
    _process_id = os.getpid()


_process_id = os.getpid()
os.register_at_fork(after_in_child=_forked)
