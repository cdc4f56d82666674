"""``RemoteStorage``: the model file from any URL fsspec reads, through a local cache.

``path_to_files`` is a URL (``s3://bucket/key``, ``gs://``, ``az://``, ``https://``,
``file://``) of the model file or of the folder that holds it; ``file_mask`` picks the file in
a folder as the disk storage's does. The file is downloaded into the cache folder under
``sha256(url)``, to a temporary name renamed when complete, with a file lock so that workers
starting together download it once; a JSON sidecar records the remote version (the ETag, else
the size and modification time), and a later start whose remote version is unchanged uses the
cached file without downloading it again.

Secrets (``key``, ``secret``, ``token``, ``storage_options``) are never part of the storage's
``repr``, a log line or an error message: a URL is shown without its user, password and query.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
from core import progress
from core.components import LoadedFile, Storage
from core.errors import ConfigError, CoreError, ModelLoadError
from core.model_files import DEFAULT_FILE_MASK, listing, pick

logger = logging.getLogger("core")

#: The environment variable naming the cache folder.
CACHE_ENV = "CORE_CACHE_DIR"

#: The extra to install for each scheme whose fsspec backend is a separate package.
EXTRAS: dict[str, str] = {
    "s3": "s3", "s3a": "s3",
    "gs": "gcs", "gcs": "gcs",
    "az": "azure", "abfs": "azure", "abfss": "azure", "adl": "azure",
    "http": "http", "https": "http",
}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_WHAT = "storage remote"


def default_cache_dir() -> str:
    """``$CORE_CACHE_DIR``, else ``~/.cache/core/models``."""
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "core", "models"
    )


def safe_url(url: str) -> str:
    """``url`` without its user, password, query and fragment: what logs and errors show."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _to_url(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.path_to_files must be the URL of the model file or its "
            f"folder (s3://bucket/key, https://..., gs://...), got {type(value).__name__}"
        )
    return value


def _check_mask(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or isinstance(value, re.Pattern):
        return
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.{attribute.name} must be a regular expression string, "
            f"got {type(value).__name__} {value!r}"
        )
    try:
        re.compile(value)
    except re.error as error:
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.{attribute.name} '{value}' is not a valid regular "
            f"expression: {error}"
        ) from None


def _check_bool(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.{attribute.name} must be true or false, "
            f"got {type(value).__name__} {value!r}"
        )


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _check_sha256(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, str) and _SHA256.match(value)):
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.sha256 must be the file's SHA-256 as 64 hex digits "
            f"(sha256sum model.pkl), got {value!r}"
        )


def _check_optional_str(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # The value may be a secret: never shown.
    if value is not None and not isinstance(value, str):
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.{attribute.name} must be a string, "
            f"got {type(value).__name__}"
        )


def _check_dict(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.{attribute.name} must be a table (dict), "
            f"got {type(value).__name__}"
        )


def _check_count(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.{attribute.name} must be a whole number >= 0, got {value!r}"
        )


def _check_seconds(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(
            f"{_WHAT}: storage_kwargs.{attribute.name} must be a number of seconds > 0, "
            f"got {value!r}"
        )


def _version(info: dict[str, Any]) -> dict[str, Any]:
    """What identifies one version of a remote file: its ETag, else its size and mtime."""
    for key in ("ETag", "etag", "e_tag", "md5Hash", "content_settings.content_md5"):
        if info.get(key):
            return {"etag": str(info[key]).strip('"')}
    mtime = None
    for key in ("mtime", "LastModified", "Last-Modified", "last_modified", "updated", "created"):
        if info.get(key) is not None:
            mtime = str(info[key])
            break
    return {"size": info.get("size"), "mtime": mtime}


class _Transient(Exception):
    """A download that may succeed when tried again (a timeout, a dropped connection)."""


def _is_timeout(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(
        isinstance(error, TimeoutError)
        or names & {"ServerTimeoutError", "ConnectTimeoutError", "ReadTimeoutError",
                    "ConnectTimeout", "ReadTimeout"}
    )


def _is_cut(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"ClientPayloadError", "ContentLengthError", "IncompleteReadError",
                         "ResponseStreamingError", "ServerDisconnectedError",
                         "ConnectionResetError"})


def _is_network(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(
        _is_timeout(error)
        or isinstance(error, ConnectionError)
        or names & {"ClientConnectionError", "ClientPayloadError", "ClientOSError",
                    "ServerDisconnectedError", "EndpointConnectionError", "ConnectionClosedError",
                    "IncompleteReadError", "ResponseStreamingError", "ContentLengthError"}
    )


@attrs.define(kw_only=True)
class RemoteStorage(Storage):
    """The model file at a URL, downloaded into a local cache.

    :param path_to_files: the URL of the model file, or of the folder that holds it:
        ``s3://bucket/key``, ``gs://bucket/key``, ``az://container/key``, ``https://host/m.onnx``,
        ``file:///srv/models/``. An ``http(s)`` URL is a file unless it ends with ``/``.
    :param file_mask: for a folder, a regular expression searched for in each file name, as
        the disk storage's (exactly one file may match, or of several one whose whole name it
        matches). Not used for a file.
    :param files_mask: pymlup's name for ``file_mask``; set one of the two.
    :param need_load_file: read the cached file's bytes and hand them to the binarizer
        (``LoadedFile.raw_data``); otherwise the binarizer reads the cached file's path.
    :param sha256: the file's expected SHA-256 (64 hex digits), checked before the binarizer
        sees the file: a download that differs is refused and not kept.
    :param cache_dir: the cache folder; default ``$CORE_CACHE_DIR`` or ``~/.cache/core/models``.
    :param endpoint_url: an S3-compatible endpoint (MinIO, Ceph); default the standard
        ``AWS_ENDPOINT_URL`` environment variable, else AWS.
    :param key: the access key id (S3) or account name; default the backend's usual places.
    :param secret: the secret access key (S3) or account key.
    :param token: a session token (S3) or a token / credentials file (GCS).
    :param storage_options: more keyword arguments for the fsspec file system
        (``{client_kwargs = {region_name = "eu-west-1"}}``); never shown.
    :param retries: how many times a download that timed out or was cut is tried again.
    :param timeout: seconds to wait for a connection or for the next bytes.
    """

    #: Settings whose values are never shown (also left out of the storage's ``repr``).
    secret_settings: ClassVar[tuple[str, ...]] = ("key", "secret", "token", "storage_options")

    path_to_files: str = attrs.field(converter=_to_url)
    file_mask: str | re.Pattern[str] | None = attrs.field(default=None, validator=_check_mask)
    files_mask: str | re.Pattern[str] | None = attrs.field(
        default=None, validator=_check_mask, repr=False
    )
    need_load_file: bool = attrs.field(default=False, validator=_check_bool)
    sha256: str | None = attrs.field(default=None, converter=_lower, validator=_check_sha256)
    cache_dir: str | None = attrs.field(default=None, validator=_check_optional_str)
    endpoint_url: str | None = attrs.field(default=None, validator=_check_optional_str)
    key: str | None = attrs.field(default=None, validator=_check_optional_str, repr=False)
    secret: str | None = attrs.field(default=None, validator=_check_optional_str, repr=False)
    token: str | None = attrs.field(default=None, validator=_check_optional_str, repr=False)
    storage_options: dict[str, Any] = attrs.field(factory=dict, validator=_check_dict,
                                                  repr=False)
    retries: int = attrs.field(default=3, validator=_check_count)
    timeout: float = attrs.field(default=30.0, validator=_check_seconds)
    _protocol: str = attrs.field(init=False, repr=False)
    _pattern: re.Pattern[str] = attrs.field(init=False, repr=False)
    _mask_given: bool = attrs.field(init=False, repr=False)
    _mask_key: str = attrs.field(init=False, repr=False)
    _fs: Any = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.file_mask is not None and self.files_mask is not None:
            raise ConfigError(
                f"{_WHAT}: storage_kwargs sets both file_mask and files_mask (pymlup's name for "
                f"the same setting); keep one"
            )
        mask = self.file_mask if self.file_mask is not None else self.files_mask
        self._mask_given = mask is not None
        self._mask_key = "files_mask" if self.files_mask is not None else "file_mask"
        self._pattern = re.compile(mask if mask is not None else DEFAULT_FILE_MASK)
        self.file_mask, self.files_mask = self._pattern.pattern, None
        self._protocol = self._check_protocol()

    # ------------------------------------------------------------------ the file system

    def _check_protocol(self) -> str:
        import fsspec

        url = self.path_to_files
        protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError:
            extra = EXTRAS.get(protocol)
            package = f"core-storage-remote[{extra}]" if extra else "the fsspec backend for it"
            raise ConfigError(
                f"{_WHAT}: {protocol}:// needs `pip install {package}`"
            ) from None
        except ValueError:
            raise ConfigError(
                f"{_WHAT}: unknown scheme {protocol}:// in storage_kwargs.path_to_files; use "
                f"s3://, gs://, az://, http(s):// or file:// (or another scheme fsspec knows)"
            ) from None
        return protocol

    def _options(self) -> dict[str, Any]:
        options = dict(self.storage_options)
        protocol = self._protocol
        if protocol in ("s3", "s3a"):
            endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
            if endpoint:
                options.setdefault("endpoint_url", endpoint)
            for name in ("key", "secret", "token"):
                if getattr(self, name) is not None:
                    options.setdefault(name, getattr(self, name))
            config = dict(options.get("config_kwargs") or {})
            config.setdefault("connect_timeout", self.timeout)
            config.setdefault("read_timeout", self.timeout)
            config.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
            options["config_kwargs"] = config
        elif protocol in ("gs", "gcs"):
            if self.token is not None:
                options.setdefault("token", self.token)
            if self.endpoint_url:
                options.setdefault("endpoint_url", self.endpoint_url)
        elif protocol in EXTRAS and EXTRAS[protocol] == "azure":
            if self.key is not None:
                options.setdefault("account_name", self.key)
            if self.secret is not None:
                options.setdefault("account_key", self.secret)
            if self.token is not None:
                options.setdefault("sas_token", self.token)
        elif protocol in ("http", "https"):
            import aiohttp

            client = dict(options.get("client_kwargs") or {})
            client.setdefault("timeout", aiohttp.ClientTimeout(
                total=None, sock_connect=self.timeout, sock_read=self.timeout))
            options["client_kwargs"] = client
        return options

    def _filesystem(self) -> Any:
        if self._fs is None:
            import fsspec

            try:
                self._fs = fsspec.filesystem(self._protocol, skip_instance_cache=True,
                                             **self._options())
            except TypeError as error:
                raise ConfigError(
                    f"{_WHAT}: the {self._protocol}:// file system refused a setting in "
                    f"storage_kwargs: {self._scrub(str(error))}"
                ) from None
        return self._fs

    # ------------------------------------------------------------------ errors

    def _scrub(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        secrets = [str(v) for name in self.secret_settings for v in _leaves(getattr(self, name))]
        for value in secrets:
            if value and len(value) >= 4:
                text = text.replace(value, "***")
        if self.path_to_files != safe_url(self.path_to_files):
            text = text.replace(self.path_to_files, safe_url(self.path_to_files))
        return text

    def _fail(self, error: BaseException, url: str, kind: type[CoreError]) -> CoreError:
        """One line for what went wrong reaching ``url``."""
        shown = safe_url(url)
        if isinstance(error, CoreError):
            return error
        error = _unwrap(error) if self._protocol in ("http", "https") else error
        if getattr(error, "status", None) == 404:
            error = FileNotFoundError(url)
        if isinstance(error, FileNotFoundError):
            what = "bucket or key" if self._protocol in ("s3", "s3a", "gs", "gcs") else "file"
            return kind(f"{_WHAT}: no such {what}: {shown}")
        if isinstance(error, PermissionError) or getattr(error, "status", None) in (401, 403):
            return kind(
                f"{_WHAT}: access denied to {shown}; check the credentials (storage_kwargs key / "
                f"secret / token, or the backend's environment variables and config files)"
            )
        if _is_timeout(error) or isinstance(error, _Transient):
            cause = error.__cause__ if isinstance(error, _Transient) else error
            timeout = _is_timeout(error) or (cause is not None and _is_timeout(cause))
            cut = cause is None or _is_cut(cause)
            reason = ("network timeout reaching" if timeout else "download interrupted from"
                      if cut else "cannot reach")
            why = cause if cause is not None else error
            detail = f" ({self._scrub(_describe(why))})" if str(why) else ""
            return kind(f"{_WHAT}: {reason} {shown} after {self.retries} retries{detail}")
        if _is_network(error):
            return kind(
                f"{_WHAT}: cannot reach {shown} after {self.retries} retries: "
                f"{self._scrub(_describe(error))}"
            )
        if isinstance(error, OSError) and getattr(error, "errno", None) in (errno.EACCES,
                                                                           errno.EPERM):
            return kind(f"{_WHAT}: access denied to {shown}")
        return kind(f"{_WHAT}: cannot read {shown}: {self._scrub(_describe(error))}")

    @contextlib.contextmanager
    def _reaching(self, url: str, kind: type[CoreError]) -> Iterator[None]:
        try:
            yield
        except CoreError:
            raise
        except Exception as error:
            raise self._fail(error, url, kind) from None

    # ------------------------------------------------------------------ finding the file

    def _find(self, kind: type[CoreError]) -> tuple[str, dict[str, Any]]:
        """The URL of the one model file and its fsspec ``info``."""
        url = self.path_to_files
        fs = self._filesystem()
        folder_like = self._protocol in ("http", "https") and url.endswith("/")
        if self._protocol in ("http", "https") and not folder_like:
            info = self._attempt(lambda: fs.info(url), url, kind)
            return url, info
        info = self._attempt(lambda: fs.info(url), url, kind)
        if info.get("type") != "directory":
            name = url.rstrip("/").rsplit("/", 1)[-1]
            if self._mask_given and not self._pattern.search(name):
                logger.warning(
                    "%s: path_to_files names the file %s, so it is used although %s '%s' does "
                    "not match its name", _WHAT, safe_url(url), self._mask_key, self.file_mask,
                )
            return url, info
        entries = self._attempt(lambda: fs.ls(url, detail=True), url, kind)
        files = {e["name"].rstrip("/").rsplit("/", 1)[-1]: e for e in entries
                 if e.get("type") == "file"}
        names = sorted(files)
        name = pick(names, self._pattern, mask_given=self._mask_given, mask_key=self._mask_key,
                    storage=_WHAT, where=safe_url(url), error=kind,
                    holds=f"it holds: {listing(names)}" if names else "it holds no file")
        return _join(url, name, self._protocol), files[name]

    def _attempt(self, call: Any, url: str, kind: type[CoreError]) -> Any:
        """``call()``, tried again up to :attr:`retries` times on a network error."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except CoreError:
                raise
            except Exception as raised:
                error = _unwrap(raised) if self._protocol in ("http", "https") else raised
                transient = _is_network(error) or isinstance(error, _Transient)
                if not transient or attempt == self.retries:
                    if transient and not isinstance(error, _Transient):
                        wrapped = _Transient()
                        wrapped.__cause__ = error
                        raise self._fail(wrapped, url, kind) from None
                    raise self._fail(error, url, kind) from None
                logger.warning("%s: %s reaching %s (try %d of %d): %s", _WHAT,
                               "timeout" if _is_timeout(error) else "network error",
                               safe_url(url), attempt + 1, self.retries + 1,
                               self._scrub(_describe(error.__cause__ or error)))
                time.sleep(min(0.2 * 2**attempt, 2.0))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ the cache

    def _cache_paths(self, url: str) -> tuple[str, str, str, str]:
        """The entry's folder, the model file, the sidecar and the lock for ``url``."""
        root = os.path.expanduser(self.cache_dir or default_cache_dir())
        key = hashlib.sha256(url.encode()).hexdigest()
        folder = os.path.join(root, key)
        name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "model"
        return folder, os.path.join(folder, name), os.path.join(folder, "version.json"), \
            os.path.join(root, f"{key}.lock")

    def _fetch(self, kind: type[CoreError]) -> str:
        """The cached model file's path, downloaded first unless the cache holds its version."""
        url, info = self._find(kind)
        version = _version(info)
        folder, path, sidecar, lock = self._cache_paths(url)
        shown = safe_url(url)
        try:
            os.makedirs(folder, exist_ok=True)
            handle = open(lock, "a+b")  # noqa: SIM115 - held for the whole download
        except OSError as error:
            raise kind(f"{_WHAT}: cannot use the cache folder {os.path.dirname(lock)}: "
                       f"{error.strerror or error}") from None
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # other workers wait here
            try:
                if self._cached(path, sidecar, url, version):
                    logger.info("%s: %s unchanged, using the cached copy %s", _WHAT, shown, path)
                    return path
                _remove_parts(folder)  # left by a process killed while downloading
                logger.info("%s: downloading %s into %s", _WHAT, shown, path)
                digest = self._attempt(lambda: self._download(url, info, path), url, kind)
                if self.sha256 is not None and digest != self.sha256:
                    os.unlink(path)
                    raise kind(
                        f"{_WHAT}: {shown} has SHA-256 {digest}, but storage_kwargs.sha256 "
                        f"expects {self.sha256}; the file changed or is not the one meant. "
                        f"Nothing was loaded"
                    )
                _write_json(sidecar, {"url": shown, "version": version, "sha256": digest,
                                      "size": os.path.getsize(path)})
                return path
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _cached(self, path: str, sidecar: str, url: str, version: dict[str, Any]) -> bool:
        try:
            with open(sidecar, encoding="utf-8") as file:
                record = json.load(file)
            size = os.path.getsize(path)
        except (OSError, ValueError):
            return False
        if record.get("version") != version or record.get("size") != size:
            if os.path.exists(path):
                logger.info("%s: %s changed since it was cached; downloading it again", _WHAT,
                            safe_url(url))
            return False
        return self.sha256 is None or record.get("sha256") == self.sha256

    def _download(self, url: str, info: dict[str, Any], path: str) -> str:
        """Copy ``url`` to ``path`` through ``<path>.part-<pid>``; the SHA-256 of the bytes."""
        fs = self._filesystem()
        size = info.get("size")
        part = f"{path}.part-{os.getpid()}"
        digest = hashlib.sha256()
        name = os.path.basename(path)
        shown = progress.Progress("downloading", name, size) if (
            isinstance(size, int) and size >= progress.PROGRESS_THRESHOLD) else None
        written = 0
        if os.path.exists(path):
            os.unlink(path)  # an old version: never loaded once the new one is under way
        try:
            if self._protocol in ("http", "https"):
                remote = fs.open(url, "rb", block_size=0)  # one streaming GET
            else:
                remote = fs.open(url, "rb", cache_type="none", **(
                    {"size": size} if isinstance(size, int) else {}))
            with remote, open(part, "wb") as local:
                while True:
                    chunk = remote.read(progress.CHUNK_SIZE)
                    if not chunk:
                        break
                    local.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    if shown is not None:
                        shown.advance(len(chunk))
                local.flush()
                os.fsync(local.fileno())
            if isinstance(size, int) and written != size:
                raise _Transient(f"the download stopped at {written} of {size} bytes")
            os.replace(part, path)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(part)
            if _is_network(error) and not isinstance(error, _Transient):
                raise _Transient(_describe(error)) from error
            raise
        if shown is not None:
            shown.finish()
        return digest.hexdigest()

    def _verify(self, path: str, kind: type[CoreError]) -> None:
        if self.sha256 is None:
            return
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            actual = progress.sha256_of(handle, size, os.path.basename(path))
        if actual != self.sha256:
            raise kind(
                f"{_WHAT}: the cached {path} has SHA-256 {actual}, but storage_kwargs.sha256 "
                f"expects {self.sha256}; delete it to download it again"
            )

    # ------------------------------------------------------------------ the contract

    def load(self) -> list[LoadedFile]:
        """The one model file, from the cache (downloaded first when missing or changed);
        with its bytes when ``need_load_file`` is set."""
        path = self._fetch(ModelLoadError)
        self._verify(path, ModelLoadError)
        raw_data = None
        if self.need_load_file:
            try:
                raw_data = progress.read_file(path)
            except OSError as error:
                raise ModelLoadError(
                    f"{_WHAT}: cannot read the cached {path}: {error.strerror or error}"
                ) from None
        return [LoadedFile(path=path, raw_data=raw_data)]

    def check(self) -> None:
        """Raise :class:`~core.errors.ConfigError` if the URL cannot be reached, does not
        exist, or is a folder in which the mask does not pick one file (nothing is
        downloaded)."""
        self._find(ConfigError)


def _unwrap(error: BaseException) -> BaseException:
    """What fsspec's http backend hid behind its ``FileNotFoundError`` (a 403, a timeout)."""
    cause = error.__cause__
    if isinstance(error, FileNotFoundError) and isinstance(cause, Exception):
        return cause
    return error


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, _Transient):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield value


def _join(url: str, name: str, protocol: str) -> str:
    return url.rstrip("/") + "/" + name


def _remove_parts(folder: str) -> None:
    """Delete the ``*.part-<pid>`` files in ``folder`` (the caller holds the entry's lock, so no
    download is writing them)."""
    for name in os.listdir(folder):
        if ".part-" in name:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def _write_json(path: str, data: dict[str, Any]) -> None:
    part = f"{path}.part-{os.getpid()}"
    with open(part, "w", encoding="utf-8") as file:
        json.dump(data, file)
    os.replace(part, path)
