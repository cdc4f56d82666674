"""An MLComponent manifest (seed 003) as a ``core`` :class:`~core.Config`.

==============================================================  ===================================
manifest field                                                  core setting
==============================================================  ===================================
``metadata.name``                                               ``name`` (default: the file's stem)
``spec.mlService.inference.entryPoint.pythonFunction``          ``storage_kwargs.python_function``
``spec.mlService.inference.entryPoint.pythonPath``              ``storage_kwargs.python_path``
``spec.mlService.inference.model.modelPath``                    ``storage_kwargs.model_key``
``spec.mlService.inference.fileExchange.inferenceFilesPath``    ``storage_kwargs.files_path``
``spec.env`` (``[{name, value}]``)                              ``storage_kwargs.env``
``spec.image.resourceLimits.cpu`` (``500m``, ``2``, ``1.5``)    ``max_thread_loop_workers`` and
                                                                ``storage_kwargs.max_models``:
                                                                whole cores, at least 1
``model.modelBox`` naming an S3 box of ``spec.connectedBoxes``  ``storage_kwargs.model_url``:
(``mountS3Box`` / ``copyS3Box``)                                ``s3://<s3BoxName>/<subPath>/<the
                                                                modelPath under the box's path>``
==============================================================  ===================================

Relative paths are resolved against the manifest's folder. When the model's box is an S3 box,
the model's URL in the bucket is worked out from the box (bucket ``s3BoxName``, key ``subPath``
followed by ``modelPath`` relative to the box's ``path``); the storage uses the file at
``modelPath`` when the platform mounted it there, and otherwise fetches it from that URL through
the ``remote`` storage (``core-storage-remote``), with the endpoint and credentials from the
environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...). Everything else in the manifest
(image, the other boxes, package registry) belongs to the platform and is ignored. A missing or wrong
field raises :class:`core.errors.ConfigError` with one line naming the file and the field.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from core.config import Config
from core.errors import ConfigError

KIND = "MLComponent"
INFERENCE = "spec.mlService.inference"
#: Seconds exchanged files live unless ``storage_kwargs.file_ttl`` is changed afterwards.
DEFAULT_FILE_TTL = 3600.0

_CPU = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(m?)\s*$")


class _Manifest:
    def __init__(self, path: Path, data: Any) -> None:
        self.path = path
        self.data = data

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {field}: {problem}")

    def get(self, field: str, *, required: bool = True, kind: type | tuple[type, ...] = str) -> Any:
        node = self.data
        walked: list[str] = []
        for part in field.split("."):
            if not isinstance(node, dict):
                raise self.fail(".".join(walked), f"must be a mapping, got {_describe(node)}")
            walked.append(part)
            if part not in node or node[part] is None:
                if required:
                    raise self.fail(field, "missing")
                return None
            node = node[part]
        if not isinstance(node, kind) or (isinstance(node, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)
        )):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.fail(field, f"must be {names}, got {_describe(node)}")
        if isinstance(node, str) and not node.strip():
            raise self.fail(field, "is empty")
        return node

    def resolve(self, value: str) -> str:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (self.path.parent / path).resolve())


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def cpu_threads(value: Any) -> int:
    """Kubernetes CPU quantity -> prediction threads: whole cores, at least 1.

    ``"500m"`` -> 1, ``"2"`` -> 2, ``1.5`` -> 1, ``"2500m"`` -> 2. Raises ``ValueError``.
    """
    if isinstance(value, bool):
        raise ValueError("must be a CPU quantity such as 500m or 2")
    if isinstance(value, (int, float)):
        cores = float(value)
    elif isinstance(value, str) and (match := _CPU.match(value)):
        cores = float(match.group(1)) / (1000 if match.group(2) else 1)
    else:
        raise ValueError(f"must be a CPU quantity such as 500m or 2, got {value!r}")
    if not math.isfinite(cores) or cores <= 0:
        raise ValueError(f"must be greater than 0, got {value!r}")
    return max(1, math.floor(cores))


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: manifest not found")
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dependency
        raise ConfigError(f"{file}: reading a manifest needs PyYAML (pip install PyYAML)") from None
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        line = str(error).replace("\n", " ")
        raise ConfigError(f"{file}: not valid YAML: {line}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a manifest must be a YAML mapping, got {type(data).__name__}")
    return data


def config_from_manifest(path: str | os.PathLike[str], **overrides: Any) -> Config:
    """Read the MLComponent manifest at ``path`` and return the ``core`` config that serves it.

    :param overrides: more config keys (``host``, ``port``...) applied on top.
    :raises core.errors.ConfigError: one line naming the manifest and the field at fault.
    """
    manifest = _Manifest(Path(path), read_manifest(path))
    kind = manifest.get("kind", required=False)
    if kind is not None and kind != KIND:
        raise manifest.fail("kind", f"must be {KIND!r}, got {kind!r}")
    name = manifest.get("metadata.name", required=False) or Path(path).stem
    function = manifest.get(f"{INFERENCE}.entryPoint.pythonFunction")
    if "." not in function.strip(".") or any(not part.isidentifier() for part in function.split(".")):
        raise manifest.fail(f"{INFERENCE}.entryPoint.pythonFunction",
                            f"must be a dotted name such as modulename.predict.inference, got {function!r}")
    python_path = manifest.get(f"{INFERENCE}.entryPoint.pythonPath", required=False) or "."
    model_path = manifest.get(f"{INFERENCE}.model.modelPath")
    files_path = manifest.get(f"{INFERENCE}.fileExchange.inferenceFilesPath")

    env: dict[str, str] = {}
    raw_env = manifest.get("spec.env", required=False, kind=list)
    for index, item in enumerate(raw_env or []):
        field = f"spec.env[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise manifest.fail(field, "must be a mapping with a 'name' and a 'value'")
        value = item.get("value", "")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise manifest.fail(f"{field}.value", f"must be a string, got {_describe(value)}")
        env[item["name"]] = str(value)

    raw_cpu = manifest.get("spec.image.resourceLimits.cpu", required=False, kind=(str, int, float))
    try:
        threads = cpu_threads(raw_cpu) if raw_cpu is not None else 1
    except ValueError as error:
        raise manifest.fail("spec.image.resourceLimits.cpu", str(error)) from None

    model_url = _model_url(manifest, model_path)

    settings: dict[str, Any] = {
        "name": name,
        "storage_type": "mlcomponent",
        "storage_kwargs": {
            "python_function": function,
            "python_path": manifest.resolve(python_path),
            "model_key": manifest.resolve(model_path),
            "files_path": manifest.resolve(files_path),
            "file_ttl": DEFAULT_FILE_TTL,
            "max_models": threads,
            "env": env,
            **({"model_url": model_url} if model_url else {}),
        },
        "data_transformer_for_predict": "passthrough",
        "data_transformer_for_predicted": "passthrough",
        "mode": "directly_to_predict",
        "max_thread_loop_workers": threads,
        **overrides,
    }
    try:
        return Config.from_dict(settings, source=str(path))
    except ConfigError as error:
        raise ConfigError(str(error).splitlines()[0]) from None


def _model_url(manifest: _Manifest, model_path: str) -> str | None:
    """``s3://<s3BoxName>/<subPath>/<modelPath under the box's path>`` when ``model.modelBox``
    names an S3 box of ``spec.connectedBoxes`` and ``modelPath`` is absolute (a path in the
    platform's container); ``None`` when there is no model box, or ``spec.connectedBoxes`` does
    not list it, or it is not an S3 box, or ``modelPath`` is relative."""
    box_name = manifest.get(f"{INFERENCE}.model.modelBox", required=False)
    if box_name is None or not PurePosixPath(model_path).is_absolute():
        return None  # a relative modelPath names a file next to the manifest (local serving)
    boxes = manifest.get("spec.connectedBoxes", required=False, kind=list) or []
    for index, box in enumerate(boxes):
        field = f"spec.connectedBoxes[{index}]"
        if not isinstance(box, dict):
            raise manifest.fail(field, f"must be a mapping, got {_describe(box)}")
        if box.get("name") != box_name:
            continue
        kinds = [kind for kind in ("mountS3Box", "copyS3Box") if box.get(kind) is not None]
        if not kinds:
            return None
        s3_box = box[kinds[0]]
        where = f"{field}.{kinds[0]}"
        if not isinstance(s3_box, dict):
            raise manifest.fail(where, f"must be a mapping, got {_describe(s3_box)}")
        bucket = s3_box.get("s3BoxName")
        if not isinstance(bucket, str) or not bucket.strip():
            raise manifest.fail(f"{where}.s3BoxName", "missing")
        sub_path = s3_box.get("subPath") or ""
        if not isinstance(sub_path, str):
            raise manifest.fail(f"{where}.subPath", f"must be str, got {_describe(sub_path)}")
        mount = box.get("path") or "/"
        if not isinstance(mount, str):
            raise manifest.fail(f"{field}.path", f"must be str, got {_describe(mount)}")
        try:
            inside = PurePosixPath(model_path).relative_to(PurePosixPath(mount))
        except ValueError:
            raise manifest.fail(f"{INFERENCE}.model.modelPath",
                                f"{model_path!r} is not under the path {mount!r} of its model box "
                                f"{box_name!r}") from None
        parts = [part for part in (*sub_path.split("/"), *inside.parts) if part and part != "."]
        return f"s3://{bucket.strip()}/" + "/".join(parts)
    return None  # a box the manifest does not describe: the platform's business, as before
