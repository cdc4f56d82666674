"""How ``core serve`` runs its HTTP server: in this process, or as N worker processes it keeps
alive; the server is hypercorn (the default) or uvicorn (``--server uvicorn``), the same way.

hypercorn's ``Config.create_sockets()`` binds the sockets, before any model loads
(:func:`bind`), so a taken port is one line and no wasted load. Then either server serves the
app on them (:func:`serve_app`): hypercorn's ``worker_serve``, the coroutine hypercorn runs in
each of its worker processes, or uvicorn's ``Server.serve(sockets=...)``. ``serving ... on
...`` is printed only once the server accepts connections: ``worker_serve`` awaits its
shutdown trigger, and uvicorn's ``Server`` runs its ``main_loop``, only after every socket
listens; there core announces, then waits for the stop, drains, and lets the server's own
graceful shutdown finish.

**One process** (:func:`serve_in_process`, ``core serve``): SIGINT and SIGTERM drain the app
and start the server's graceful shutdown; a signal while the model still loads ends the process
at once.

**Workers** (:class:`Supervisor`, ``core serve --workers N``). ``hypercorn --workers N`` stops
every worker as soon as one dies, and its parent then exits 0 (``_join_exited`` in
``hypercorn/run.py``). Instead, this process holds the sockets, starts N workers (hypercorn's
"spawn" processes, each serving the same sockets), and:

* replaces a worker that dies once serving (a segfault, ``os._exit``, SIGKILL from the OOM
  killer): only the requests in flight on that worker are lost, the others keep serving;
* forwards SIGTERM and SIGINT through hypercorn's multiprocess shutdown event, so every
  worker shuts down gracefully; a worker also stops if this process disappears;
* keeps the metrics of every worker in one directory (:class:`core.metrics.SharedDirectory`,
  named by ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts), so that ``/metrics`` adds
  them up, marks a dead worker's gauges dead, and answers ``metrics_port`` itself when set;
* exits :data:`EXIT_STARTUP_FAILED` (1) when a worker fails to start (the worker's one line
  is printed once, not once per worker), and :data:`EXIT_CRASH_LOOP` (3) on a crash loop: more
  than :attr:`CrashLoop.max_deaths` deaths within :attr:`CrashLoop.window` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import attrs

from core.app import ServeApp
from core.errors import ConfigError
from core.logs import announce

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.synchronize import Event

    from hypercorn.config import Config as HypercornConfig
    from hypercorn.config import Sockets

    from core.config import Config
    from core.metrics import SharedDirectory

logger = logging.getLogger("core")

EXIT_OK = 0
#: A worker (or the only process) could not start: config, model, analysis, or a crash.
EXIT_STARTUP_FAILED = 1
#: Workers kept dying: more than ``CrashLoop.max_deaths`` in ``CrashLoop.window`` seconds.
EXIT_CRASH_LOOP = 3
#: Seconds between a worker's checks of the supervisor's shutdown event (hypercorn polls too).
POLL_INTERVAL = 0.1
#: Seconds a stopping worker gets beyond its graceful timeouts before it is killed.
STOP_MARGIN = 5.0

#: The HTTP servers ``core serve --server NAME`` runs, and what to install for each.
SERVERS = {"hypercorn": "core (hypercorn is a dependency)", "uvicorn": "'core[uvicorn]'"}
DEFAULT_SERVER = "hypercorn"


def check_server(name: str) -> None:
    """:raises ConfigError: one line saying what to install when ``name``'s server (and for
    uvicorn its fast parts, uvloop and httptools) is not installed."""
    import importlib.util

    needs = {"uvicorn": ("uvicorn", "uvloop", "httptools")}.get(name, ())
    missing = [module for module in needs if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"--server {name} needs {', '.join(missing)}: pip install {SERVERS[name]}")


@attrs.frozen
class CrashLoop:
    """When the supervisor gives up: more than ``max_deaths`` worker deaths within ``window``
    seconds (``core serve --max-worker-deaths``, ``--worker-deaths-window``)."""

    max_deaths: int = 5
    window: float = 60.0


def bind(hypercorn_config: HypercornConfig) -> Sockets:
    """Bind the sockets hypercorn will serve on (they listen only once the app has started).

    :raises ConfigError: one line naming the address, for a taken port, a port the user may
        not bind, or an unknown host.
    """
    try:
        return hypercorn_config.create_sockets()
    except OSError as error:
        where = ", ".join(hypercorn_config.bind)
        if error.errno == errno.EADDRINUSE:
            reason = "the address is already in use (another server?); choose another --port"
        elif error.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges); choose another --port"
        elif isinstance(error, socket.gaierror):
            reason = f"unknown host ({error.strerror}); check --host"
        else:
            reason = error.strerror or str(error)
        raise ConfigError(f"cannot listen on {where}: {reason}") from None


def close(sockets: Sockets) -> None:
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
        sock.close()


def addresses(sockets: Sockets) -> str:
    """Where the sockets are bound, as URLs (the real port, also for ``--port 0``)."""
    from hypercorn.utils import repr_socket_addr

    urls = [f"https://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets.secure_sockets]
    urls += [f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets.insecure_sockets]
    return ", ".join(urls)


async def serve_app(
    app: ServeApp,
    hypercorn_config: HypercornConfig,
    sockets: Sockets,
    *,
    on_listening: Callable[[], None],
    on_stopped_while_starting: Callable[[], None],
    signals: tuple[signal.Signals, ...],
    stop_when: Callable[[], bool] | None = None,
    owns_listeners: bool = True,
    server: str = DEFAULT_SERVER,
) -> None:
    """Serve ``app`` on ``sockets`` with ``server`` (one of :data:`SERVERS`) until stopped.

    :param hypercorn_config: the server's settings (hypercorn's; uvicorn gets the same ones).
    :param on_listening: called once every socket accepts connections (the app has started).
    :param on_stopped_while_starting: called when one of ``signals`` arrives before that; it
        must end the process (there is nothing to finish while the model loads).
    :param signals: the signals that start the graceful shutdown.
    :param stop_when: polled every :data:`POLL_INTERVAL` seconds; ``True`` stops the server.
    :param owns_listeners: this process alone serves the sockets: at shutdown it answers the
        connections left waiting and stops listening (with workers, the supervisor does).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    listening = False

    def on_signal() -> None:
        if not listening:
            on_stopped_while_starting()
        stop.set()

    for signum in signals:
        loop.add_signal_handler(signum, on_signal)

    async def watch() -> None:
        assert stop_when is not None
        while not stop_when():
            await asyncio.sleep(POLL_INTERVAL)
        stop.set()

    async def until_stopped(stop_accepting: Callable[[], None]) -> None:
        """Called by the server once every socket listens: announce, wait for the stop,
        drain; the server's own graceful shutdown follows."""
        nonlocal listening
        listening = True
        on_listening()
        watcher = loop.create_task(watch()) if stop_when is not None else None
        try:
            await stop.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
        await drain(app, sockets, app.up.conf.drain_seconds if app.up is not None else 0.0,
                    refused, owns_listeners, stop_accepting)

    refused: list[threading.Thread] = []
    if server == "uvicorn":
        await _serve_uvicorn(app, hypercorn_config, sockets, until_stopped)
    else:
        await _serve_hypercorn(app, hypercorn_config, sockets, until_stopped)
    finish_refusals(refused)


UntilStopped = Callable[[Callable[[], None]], Awaitable[None]]


async def _serve_hypercorn(app: ServeApp, hypercorn_config: HypercornConfig, sockets: Sockets,
                           until_stopped: UntilStopped) -> None:
    """hypercorn's ``worker_serve`` (the coroutine each of its worker processes runs): it
    awaits its ``shutdown_trigger`` only after ``asyncio.start_server()`` ran for every
    socket, and begins its graceful shutdown when the trigger returns."""
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import wrap_app

    loop = asyncio.get_running_loop()

    def stop_accepting() -> None:
        for sock in listeners(sockets):
            loop.remove_reader(sock.fileno())  # asyncio's accept callback

    await worker_serve(wrap_app(app, hypercorn_config.wsgi_max_body_size, "asgi"),  # type: ignore[arg-type]
                       hypercorn_config, sockets=sockets,
                       shutdown_trigger=lambda: until_stopped(stop_accepting))


def uvicorn_config(app: Any, hypercorn_config: HypercornConfig) -> Any:
    """uvicorn's ``Config`` for ``app`` with core's settings: the lifespan required, core's
    logging and access log (not uvicorn's), hypercorn's keep-alive timeout, the graceful
    timeout, and no ``X-Forwarded-*`` rewriting (hypercorn does none either)."""
    import uvicorn

    return uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False, proxy_headers=False,
        timeout_keep_alive=int(hypercorn_config.keep_alive_timeout),
        # typed int, used as asyncio.timeout()'s seconds: the float is kept as hypercorn keeps it
        timeout_graceful_shutdown=hypercorn_config.graceful_timeout,  # type: ignore[arg-type]
    )


async def _serve_uvicorn(app: ServeApp, hypercorn_config: HypercornConfig, sockets: Sockets,
                         until_stopped: UntilStopped) -> None:
    """uvicorn's ``Server.serve`` on copies of the sockets: its ``main_loop`` (which runs once
    every socket listens) waits in ``until_stopped``; closing uvicorn's listeners (its copies,
    whatever the event loop) stops it accepting while ours stay open for :func:`drain`."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # core's signal handlers stay
            yield

        async def main_loop(self) -> None:
            ticks = asyncio.ensure_future(super().main_loop())  # uvicorn's Date header
            try:
                await until_stopped(self.stop_accepting)
            finally:
                self.should_exit = True
                await ticks

        def stop_accepting(self) -> None:
            for listener in self.servers:
                listener.close()

    copies = [sock.dup() for sock in listeners(sockets)]
    try:
        await Server(uvicorn_config(app, hypercorn_config)).serve(sockets=copies)
    finally:
        for sock in copies:
            sock.close()


def run(main: Coroutine[Any, Any, None], server: str) -> None:
    """``asyncio.run(main)``, on uvloop's event loop under uvicorn when it is installed (as
    uvicorn's ``--loop auto`` chooses)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if server == "uvicorn":
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
    if factory is None:
        asyncio.run(main)
    elif sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main)
    else:  # pragma: no cover - Python 3.10
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(main)


#: Seconds between the end of accepting and hypercorn's shutdown: a client that connected just
#: before has sent its request by then, so no request is dropped unread.
SETTLE = 0.2
#: Seconds a refused connection gets to send its request's head and read the 503.
REFUSAL_TIMEOUT = 1.0
_REFUSAL = (b'{"detail":[{"loc":[],"msg":"the server is shutting down; send the request again",'
            b'"type":"unavailable"}]}')
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
           b"content-length: " + str(len(_REFUSAL)).encode() + b"\r\nretry-after: 1\r\n"
           b"connection: close\r\n\r\n" + _REFUSAL)


def listeners(sockets: Sockets) -> list[socket.socket]:
    return [*sockets.insecure_sockets, *sockets.secure_sockets]


async def drain(app: ServeApp, sockets: Sockets, seconds: float, refused: list[threading.Thread],
                owns_listeners: bool, stop_accepting: Callable[[], None]) -> None:
    """The graceful shutdown's first part, before hypercorn's (which closes idle connections
    and gives the requests in flight ``graceful_timeout``):

    1. the app drains (:meth:`core.web.Web.drain`): readiness turns false and every answer
       closes its connection, so a client does not send another request on it;
    2. for ``seconds`` (``drain_seconds``) the server goes on serving, so that a client whose
       next request is already on its way gets it answered, and a load balancer has time to
       see the readiness change;
    3. it stops accepting connections (``stop_accepting``, the server's way). A process
       that owns the listening sockets (``core serve`` in one process) then, in one step,
       takes the connections waiting to be accepted, answers each 503 (``Connection: close``; the threads are added to
       ``refused``) and stops listening, so that later ones are refused by the system before
       they send anything. With workers, the supervisor does that for all of them
       (:class:`Refuser`);
    4. :data:`SETTLE` seconds later (the connections accepted just before have sent their
       requests) the server's own shutdown begins: no request is dropped unread.
    """
    app.drain()
    if seconds > 0:
        await asyncio.sleep(seconds)
    stop_accepting()  # no more connections here
    if owns_listeners:  # no await between taking the waiting connections and closing the door
        for sock in listeners(sockets):
            refused += refuse_waiting(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
    await asyncio.sleep(SETTLE)


def refuse_waiting(listener: socket.socket) -> list[threading.Thread]:
    """Accept every connection waiting on ``listener`` and answer each 503 in a thread."""
    threads: list[threading.Thread] = []
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # nothing more waiting (BlockingIOError), or the socket stopped
            return threads
        thread = threading.Thread(target=_refuse, args=(conn,), name="core-refuse", daemon=True)
        thread.start()
        threads.append(thread)


def _refuse(conn: socket.socket) -> None:
    """Read the request's head, answer 503, and close without a reset: what the client sent
    after the head is read away first (closing with unread data would reset the connection
    and could destroy the answer before the client reads it)."""
    with conn, contextlib.suppress(OSError):
        conn.settimeout(REFUSAL_TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = conn.recv(65536)
            if not chunk:
                return
            head += chunk
        conn.sendall(REFUSAL)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass


def finish_refusals(threads: list[threading.Thread]) -> None:
    """Wait for the 503s still being written, and say how many connections got one."""
    deadline = time.monotonic() + REFUSAL_TIMEOUT * 3
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if threads:
        logger.info("shutdown: %d connection(s) that came while stopping were answered 503",
                    len(threads))


class Refuser:
    """The supervisor's part of a shutdown with workers: once the workers have stopped
    accepting (``delay`` seconds after the shutdown began), connections that still come are
    answered 503 here, until :meth:`close` takes the last waiting ones and stops listening."""

    def __init__(self, sockets: Sockets, delay: float) -> None:
        self.sockets = sockets
        self.refused: list[threading.Thread] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(delay,), name="core-refuser", daemon=True)
        self._thread.start()

    def _run(self, delay: float) -> None:
        if self._stop.wait(delay):
            return
        import select

        socks = listeners(self.sockets)
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(socks, [], [], POLL_INTERVAL)
            except (OSError, ValueError):
                return
            for sock in ready:
                self.refused += refuse_waiting(sock)

    def close(self) -> None:
        """Answer what is waiting, stop listening, and finish the 503s."""
        self._stop.set()
        self._thread.join()
        for sock in listeners(self.sockets):
            self.refused += refuse_waiting(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
        finish_refusals(self.refused)


def serve_in_process(conf: Config, hypercorn_config: HypercornConfig, sockets: Sockets,
                     server: str = DEFAULT_SERVER) -> int:
    """``core serve``: load the model and serve it in this process until SIGINT/SIGTERM."""

    def listening() -> None:
        announce(f"core: serving {conf.name!r} on {addresses(sockets)}")

    def stopped_while_starting() -> None:
        announce("core: stopped before start-up finished")
        os._exit(EXIT_OK)

    try:
        run(serve_app(ServeApp(conf), hypercorn_config, sockets, on_listening=listening,
                      on_stopped_while_starting=stopped_while_starting,
                      signals=(signal.SIGINT, signal.SIGTERM), server=server), server)
    finally:
        close(sockets)
    return EXIT_OK


# ---------------------------------------------------------------------------- worker processes


def run_worker(conf: Config, hypercorn_config: HypercornConfig, sockets: Sockets,
               shutdown_event: Event, channel: Connection, server: str = DEFAULT_SERVER) -> None:
    """The body of one worker process: serve until the supervisor's ``shutdown_event``, a
    SIGTERM of its own, or the supervisor's disappearance. Tells the supervisor ``("ready",)``
    once it accepts connections, or ``("failed", line, details)`` if it cannot start."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole group: the supervisor decides
    supervisor = os.getppid()

    def failed(line: str, details: str | None) -> Any:
        channel.send(("failed", line, details))
        channel.close()
        os._exit(EXIT_STARTUP_FAILED)

    run(serve_app(
        ServeApp(conf, on_startup_failure=failed, serves_metrics_port=False), hypercorn_config, sockets,
        on_listening=lambda: channel.send(("ready",)),
        on_stopped_while_starting=lambda: os._exit(EXIT_OK),
        signals=(signal.SIGTERM,),
        stop_when=lambda: shutdown_event.is_set() or os.getppid() != supervisor,
        owns_listeners=False,
        server=server,
    ), server)


@attrs.define
class Worker:
    """One worker process in its slot (1..N), and what the supervisor knows of it."""

    slot: int
    process: BaseProcess
    channel: Connection
    ready: bool = False
    failure: tuple[str, str | None] | None = None
    talking: bool = True  # until its channel reaches EOF (the worker has exited)

    @property
    def name(self) -> str:
        return f"worker {self.slot} (pid {self.process.pid})"


def how_it_ended(exitcode: int | None) -> str:
    """``killed by SIGSEGV``, ``exited with code 1``..."""
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class Supervisor:
    """Runs ``workers`` processes serving ``conf`` on ``sockets``, replacing each that dies.

    :meth:`run` returns the exit code: :data:`EXIT_OK` after SIGTERM/SIGINT,
    :data:`EXIT_STARTUP_FAILED` when a worker could not start, :data:`EXIT_CRASH_LOOP` when
    workers died more often than ``crash_loop`` allows.
    """

    def __init__(self, conf: Config, hypercorn_config: HypercornConfig, sockets: Sockets,
                 workers: int, crash_loop: CrashLoop | None = None, server: str = DEFAULT_SERVER) -> None:
        self.conf = conf
        self.server = server
        self.hypercorn_config = hypercorn_config
        self.sockets = sockets
        self.count = workers
        self.crash_loop = crash_loop or CrashLoop()
        self.context = multiprocessing.get_context("spawn")  # as hypercorn: no forked threads
        self.shutdown_event = self.context.Event()
        self.workers: dict[int, Worker] = {}
        self.deaths: list[float] = []
        self.announced = False
        self._signals: list[int] = []
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        self.metrics: SharedDirectory | None = None
        self._metrics_server: Any = None

    # ------------------------------------------------------------------ running

    def run(self) -> int:
        """Start the workers and supervise them until stopped; the exit code."""
        previous = self._install_signal_handlers()
        try:
            self._start_metrics()
            for slot in range(1, self.count + 1):
                self._start(slot)
            return self._supervise()
        finally:
            self._restore_signal_handlers(previous)
            close(self.sockets)
            self._wakeup_read.close()
            self._wakeup_write.close()
            self._stop_metrics()

    def _start_metrics(self) -> None:
        """The workers' shared metrics directory, and ``metrics_port`` answered from here.

        :raises ConfigError: ``metrics_port`` cannot be bound.
        """
        if not self.conf.metrics:
            return
        from core.metrics import SharedDirectory, directory_registry, serve_port

        self.metrics = SharedDirectory()
        if self.conf.metrics_port is not None:
            try:
                self._metrics_server = serve_port(directory_registry(self.metrics.path), self.conf.host,
                                                  self.conf.metrics_port)
            except ConfigError:
                self._stop_metrics()
                raise

    def _stop_metrics(self) -> None:
        from core.metrics import stop_port

        if self._metrics_server is not None:
            stop_port(self._metrics_server)
            self._metrics_server = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def _start(self, slot: int) -> None:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=run_worker, name=f"core-worker-{slot}",
            args=(self.conf, self.hypercorn_config, self.sockets, self.shutdown_event, writer, self.server),
        )
        # As hypercorn does: the worker starts with SIGINT ignored (Ctrl+C reaches the whole
        # process group; this process decides), and keeps it so in run_worker.
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, handler)
        writer.close()  # the worker holds the only writing end: EOF once it is gone
        self.workers[slot] = Worker(slot, process, reader)

    def _supervise(self) -> int:
        while True:
            waitables: list[Any] = [self._wakeup_read]
            for worker in self.workers.values():
                waitables += [worker.channel] if worker.talking else []
                waitables.append(worker.process.sentinel)
            wait(waitables)
            if self._take_signals():
                return self._stop(EXIT_OK)
            for worker in list(self.workers.values()):
                self._read(worker)
                if worker.process.is_alive():
                    continue
                code = self._ended(worker)
                if code is not None:
                    return code

    def _read(self, worker: Worker) -> None:
        """Take the worker's messages: ready, or why it could not start."""
        try:
            while worker.channel.poll():
                message = worker.channel.recv()
                if message[0] == "ready":
                    worker.ready = True
                    self._announce_once_all_ready(worker)
                elif message[0] == "failed":
                    worker.failure = (message[1], message[2])
        except (EOFError, OSError):
            worker.talking = False  # the worker is exiting; its sentinel will say so

    def _announce_once_all_ready(self, worker: Worker) -> None:
        if self.announced:
            logger.info("core: %s is serving", worker.name)
            return
        if all(w.ready for w in self.workers.values()) and len(self.workers) == self.count:
            self.announced = True
            pids = ", ".join(str(w.process.pid) for w in self.workers.values())
            announce(f"core: serving {self.conf.name!r} on {addresses(self.sockets)} with "
                     f"{self.count} workers (pids {pids})")

    def _ended(self, worker: Worker) -> int | None:
        """A worker exited on its own: replace it, or return the supervisor's exit code."""
        worker.process.join()
        worker.channel.close()
        del self.workers[worker.slot]
        if self.metrics is not None and worker.process.pid is not None:
            self.metrics.process_dead(worker.process.pid)
        if not worker.ready:  # it never served: the same would happen to its replacement
            line = worker.failure[0] if worker.failure else (
                f"core: cannot start: {worker.name} {how_it_ended(worker.process.exitcode)} "
                "while loading the model")
            details = worker.failure[1] if worker.failure else None
            logger.critical("%s", line if details is None else f"{line}\n{details}")
            return self._stop(EXIT_STARTUP_FAILED)
        now = time.monotonic()
        limit = self.crash_loop
        self.deaths = [t for t in self.deaths if now - t <= limit.window] + [now]
        ended = f"{worker.name} {how_it_ended(worker.process.exitcode)}"
        if len(self.deaths) > limit.max_deaths:
            logger.critical(
                "core: stopping: %s; %d workers died within %g s, more than the %d allowed "
                "(a crash loop; --max-worker-deaths, --worker-deaths-window)",
                ended, len(self.deaths), limit.window, limit.max_deaths)
            return self._stop(EXIT_CRASH_LOOP)
        logger.error("core: %s; starting a new one (%d of at most %d worker deaths in %g s)",
                     ended, len(self.deaths), limit.max_deaths, limit.window)
        self._start(worker.slot)
        return None

    def _stop(self, code: int) -> int:
        """Stop every worker and return ``code``: those serving shut down gracefully (the
        shutdown event), those still loading at once (SIGTERM)."""
        self.shutdown_event.set()
        # once the workers stop accepting, connections that still come are answered 503 here
        refuser = Refuser(self.sockets, self.conf.drain_seconds + SETTLE + 2 * POLL_INTERVAL)
        for worker in self.workers.values():
            if not worker.ready:
                worker.process.terminate()
        grace = self.hypercorn_config.graceful_timeout + self.conf.timeout_for_shutdown_daemon
        deadline = time.monotonic() + grace + STOP_MARGIN
        for worker in self.workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                logger.error("core: %s did not stop in %g s; killing it", worker.name,
                             grace + STOP_MARGIN)
                worker.process.kill()
                worker.process.join()
            worker.channel.close()
        self.workers.clear()
        refuser.close()
        return code

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self) -> tuple[dict[signal.Signals, Any], int]:
        """SIGINT/SIGTERM are recorded and wake :meth:`_supervise` (through the wakeup fd)."""
        self._wakeup_read.setblocking(False)
        self._wakeup_write.setblocking(False)
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        for signum in handlers:
            signal.signal(signum, self._on_signal)
        return handlers, signal.set_wakeup_fd(self._wakeup_write.fileno())

    def _restore_signal_handlers(self, previous: tuple[dict[signal.Signals, Any], int]) -> None:
        handlers, wakeup_fd = previous
        signal.set_wakeup_fd(wakeup_fd)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)

    def _take_signals(self) -> bool:
        try:
            while self._wakeup_read.recv(64):
                pass
        except BlockingIOError:
            pass
        taken, self._signals = self._signals, []
        if taken:
            logger.info("core: %s received; stopping %d workers gracefully",
                        signal.Signals(taken[0]).name, len(self.workers))
        return bool(taken)
