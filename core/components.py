"""The behaviour contracts behind the five kinds of named component.

A plugin subclasses one of these, then registers the class under a name through a
``register_*`` hook (see :mod:`core.hookspecs`). Components are built from the config: a
storage from ``storage_kwargs``, a binarizer from ``binarization_kwargs``, a result store
from ``result_store_kwargs``, an architecture from the application object. Subclasses are
usually ``attrs`` classes or dataclasses so that an unknown setting is refused by the
constructor and named in the error.
"""

from __future__ import annotations

import abc
import enum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

if TYPE_CHECKING:
    from core.analysis import Argument
    from core.config import Config
    from core.metrics import Metrics
    from core.runner import PredictRunner


@attrs.define
class LoadedFile:
    """One file a storage found: where it is, and optionally its bytes or a ready object.

    The first two fields are in pymlup's order, so ``LoadedFile(raw_data, path=...)`` and
    ``LoadedFile(raw_data, path)`` work as they did there; ``core`` passes every field by name.

    :ivar raw_data: the file's bytes, when the storage read them (``need_load_file``); the
        host drops them right after deserialization.
    :ivar path: the file on the local disk, when there is one.
    :ivar obj: a model object already in memory; the binarizer step is skipped.
    :ivar name: a display name for logs and ``/info`` (defaults to the path's file name).
    """

    raw_data: bytes | bytearray | memoryview | None = attrs.field(default=None, repr=False)
    path: str | None = None
    obj: Any = attrs.field(default=None, repr=False)
    name: str | None = None

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.path:
            return self.path.rsplit("/", 1)[-1]
        return "<in memory>"

    def has_suffix(self, *suffixes: str) -> bool:
        """Whether the file's path (or else its name) ends with one of ``suffixes``, ignoring
        case: ``file.has_suffix(".pkl", ".pickle")``."""
        return (self.path or self.name or "").lower().endswith(tuple(s.lower() for s in suffixes))

    def head(self, size: int) -> bytes | None:
        """The first ``size`` bytes, from :attr:`raw_data` or the file at :attr:`path`; ``None``
        when there is nothing to read. For a binarizer's :meth:`Binarizer.detect`."""
        if self.raw_data is not None:
            return bytes(memoryview(self.raw_data)[:size])
        if self.path is None:
            return None
        try:
            with open(self.path, "rb") as handle:
                return handle.read(size)
        except OSError:
            return None


class Storage(abc.ABC):
    """Brings the model's files to the local machine (or hands over an object in memory).

    Built as ``StorageClass(**storage_kwargs)``. Implement :meth:`load`; implement
    :meth:`check` when the storage can cheaply tell whether :meth:`load` would succeed
    (``core validate`` calls it).
    """

    #: True when :meth:`load` hands over a model object (``LoadedFile.obj``) rather than
    #: files: no binarizer is needed, so ``core serve`` and ``core validate`` do not ask for
    #: one (the ``memory`` storage, MLComponent's).
    hands_over_objects: ClassVar[bool] = False

    @abc.abstractmethod
    def load(self) -> list[LoadedFile]:
        """Return the model's files. Raise :class:`core.errors.ModelLoadError` with a message
        naming what to fix when they cannot be had."""

    def check(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Raise :class:`core.errors.ConfigError` if :meth:`load` is sure to fail."""


class Binarizer(abc.ABC):
    """Turns loaded files into a model object. Built as ``BinarizerClass(**binarization_kwargs)``."""

    #: True when reading a file runs code from it (unpickling). Such a binarizer loads a file
    #: only where the config says it is trusted: ``binarization_type`` names the binarizer, or
    #: :meth:`pinned` is true. ``binarization_type = "auto"`` refuses an unpinned one.
    runs_code: ClassVar[bool] = False
    #: The setting (a ``binarization_kwargs`` key) that pins this binarizer to one known file,
    #: such as its hash. When it is set, ``auto`` may load a file even though :attr:`runs_code`.
    pin_setting: ClassVar[str | None] = None

    def pinned(self) -> bool:
        """Whether :attr:`pin_setting` is set: the config vouches for one known file."""
        return self.pin_setting is not None and getattr(self, self.pin_setting, None) is not None

    @classmethod
    def detect(cls, file: LoadedFile) -> tuple[float, str]:
        """How sure this binarizer is that it can read ``file`` (0 to 1), and why.

        Used by ``binarization_type = "auto"``: the highest score wins and the reason is
        logged; a tie at the top, or no score above 0, is an error naming the choices. Judge
        from ``file.display_name`` and its first bytes (``file.head()``), cheaply: every
        installed binarizer is asked.
        """
        return 0.0, "does not detect"

    @abc.abstractmethod
    def deserialize(self, files: list[LoadedFile]) -> Any:
        """Return the model object built from ``files``."""


class Transformer(abc.ABC):
    """Converts request data into the model's format and the model's answer back to JSON."""

    def to_model(self, data: Any, argument: Argument) -> Any:
        """Convert one validated argument; the default passes it through.

        For the rows argument (``argument.is_rows``) with known fields, ``argument.columns``
        names and types them, in the order of each validated row's values."""
        return data

    def from_model(self, data: Any) -> Any:
        """Convert the model's result into something orjson serialises; default: unchanged."""
        return data


class ResultState(enum.Enum):
    """What a :class:`ResultStore` holds for a predict id."""

    #: Nothing: never stored, or expired.
    MISSING = "missing"
    #: The prediction was accepted and is running (on some worker, on some machine).
    PENDING = "pending"
    #: The prediction finished: its payload is there.
    READY = "ready"


class ResultStore(abc.ABC):
    """Where long predictions' answers (``is_long_predict``) wait for ``GET /get-predict/{id}``,
    so that any worker process, on any machine sharing the store, can answer it.

    Built as ``ResultStoreClass(**result_store_kwargs)``, in every worker process, when the
    web app is built. core calls the methods from the event loop; a store that blocks should
    be quick (a local file) or asynchronous (a network client). ``payload`` is opaque bytes
    that core wrote (the answer serialised once, error or result); ``ttl`` is in seconds.

    The guarantees core relies on:

    * :meth:`put` is write-once: a second ``put`` of one id is refused (returns False) and
      the first payload stays, so a result is never replaced or mixed up with another;
    * a payload is readable by :meth:`get` from every process sharing the store as soon as
      :meth:`put` has returned, until ``ttl`` seconds later; after that the id is
      :attr:`ResultState.MISSING`;
    * a pending marker (:meth:`put_pending`) answers :attr:`ResultState.PENDING` until
      :meth:`put` of the same id, or until its own ``ttl`` ran out (a worker that died).
    """

    async def start(self) -> None:  # noqa: B027 - optional
        """Called when the server starts, on its event loop (open connections here)."""

    @abc.abstractmethod
    async def put_pending(self, predict_id: str, ttl: float) -> None:
        """Mark ``predict_id`` as accepted and running, for ``ttl`` seconds at most."""

    @abc.abstractmethod
    async def put(self, predict_id: str, payload: bytes, ttl: float) -> bool:
        """Store the finished answer of ``predict_id`` for ``ttl`` seconds, replacing its
        pending marker. Return False, storing nothing, when ``predict_id`` already has one."""

    @abc.abstractmethod
    async def get(self, predict_id: str) -> tuple[ResultState, bytes | None]:
        """What is stored for ``predict_id``: ``(READY, payload)``, ``(PENDING, None)`` or
        ``(MISSING, None)``. Any string may come here (it is the URL's): an id the store
        cannot hold is simply MISSING."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Called when the server stops: release connections and files of this process."""


@attrs.frozen
class Deferred:
    """What :meth:`Architecture.predict` returns for a prediction answered later (long
    predictions): the HTTP edge answers 202 with the id, and the result is fetched with
    :meth:`Architecture.result`."""

    predict_id: str


class ModelHost(Protocol):
    """What an architecture may use of the served model: ``up.ml`` provides it.

    An architecture never sees HTTP: it gets validated request values and returns results.
    """

    @property
    def conf(self) -> Config:
        """The settings (read them; the architecture's own are listed in its ``settings``)."""

    @property
    def rows_name(self) -> str | None:
        """The rows argument's name (``X``), or None when the model takes no rows."""

    def row_count(self, values: dict[str, Any]) -> int | None:
        """How many rows ``values`` holds (None without a rows argument)."""

    def is_empty(self, values: dict[str, Any]) -> bool:
        """Whether ``values`` holds zero rows (answered ``[]`` without calling the model)."""

    def predict_sync(self, values: dict[str, Any]) -> Any:
        """Transform, call the model, transform back: in the calling thread."""

    def transform_in(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validated values -> the model's format (``transformer_to_model``)."""

    def call_model(self, values: dict[str, Any]) -> Any:
        """Call the predict method on model-format values."""

    def transform_out(self, result: Any) -> Any:
        """The model's result -> JSON-ready (``transformer_from_model``)."""

    @property
    def metrics(self) -> Metrics | None:
        """The service's metrics (:class:`core.metrics.Metrics`), None with ``metrics = false``:
        an architecture that merges requests observes its batch sizes with
        ``metrics.observe_batch_rows(rows)`` (``core_batch_rows``)."""

    @property
    def runner(self) -> PredictRunner:
        """Where calls run: ``await host.runner.run(call, kind)`` runs ``call()`` in the
        thread pool, or on the event loop when calls of ``kind`` are known to be quick; see
        :mod:`core.runner` (slots, stuck calls, the inline fast path)."""

    async def run(self, values: dict[str, Any]) -> Any:
        """:meth:`predict_sync` through the runner: what ``directly_to_predict`` does."""

    def result_store(self) -> ResultStore:
        """A new :class:`ResultStore`, the one ``result_store_type`` names: where an architecture
        that answers later (:attr:`Architecture.deferred`) keeps its results for every worker."""


class Architecture(abc.ABC):
    """How predictions are run: directly, through a queue, in batches...

    Built as ``ArchitectureClass(host)`` each time the web app is built, where ``host`` is
    the :class:`ModelHost` (``up.ml``): ``host.predict_sync(values)`` runs the model,
    ``host.conf`` holds the settings. An architecture knows nothing of HTTP: the edge
    (:mod:`core.http`) admits requests, and ``predict`` gets their validated values.
    """

    #: Config keys this architecture reads; ``/info`` reports them.
    settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, host: ModelHost) -> None:
        self.host = host

    async def start(self) -> None:  # noqa: B027 - optional
        """Called when the server starts (workers, queues)."""

    async def stop(self, grace: float) -> None:  # noqa: B027 - optional
        """Called on shutdown: finish work in flight within ``grace`` seconds."""

    @abc.abstractmethod
    async def predict(self, data: dict[str, Any], predict_id: str) -> Any:
        """Run one validated request and return the JSON-ready result, or a
        :class:`Deferred` when the result is fetched later (:attr:`deferred`)."""

    @property
    def deferred(self) -> bool:
        """Whether predictions are answered later (202, then ``GET /get-predict/{id}``)."""
        return False

    async def result(self, predict_id: str) -> Any:
        """The result of a deferred prediction; raise :class:`core.errors.NotFound` for an
        unknown id, :class:`core.errors.RequestTimeout` while it is not ready."""
        from core.errors import NotFound

        raise NotFound(f"no prediction with id {predict_id!r}", loc=["path", "predict_id"])

    @property
    def saturated(self) -> bool:
        """Whether a new request would be refused now (a full queue): readiness is false."""
        return False

    def info(self) -> dict[str, Any]:
        """State reported under ``/info``: settings, queue depth, predictions in flight."""
        return {key: getattr(self.host.conf, key, None) for key in self.settings}
