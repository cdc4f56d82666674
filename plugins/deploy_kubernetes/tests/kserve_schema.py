"""A strict check of a manifest against the KServe SDK's generated models.

An InferenceService is a custom resource: the Kubernetes API's schemas do not hold it. The kserve
SDK's classes (``V1beta1InferenceService``...) are generated from KServe's OpenAPI document, and
the pod parts (``V1Container``...) come from the kubernetes client it depends on: each class's
``openapi_types`` names its fields' types, ``attribute_map`` their JSON names. :func:`problems`
walks a manifest against them: an unknown key, a value of the wrong type, or a missing required
field (the classes' own constructors check those) is reported
with its path.
"""

from __future__ import annotations

import re
from typing import Any

import kserve.models
import kubernetes.client

# the kserve classes write ``list[X]`` and ``dict(str, X)``; the kubernetes client's newer
# (pydantic) classes ``List[X]`` and ``Dict[str, X]``
_LIST = re.compile(r"[Ll]ist\[(.+)\]")
_DICT = re.compile(r"[Dd]ict[(\[]([^,]+), (.+)[)\]]")
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
    "object": (object,), "datetime": (str,), "date": (str,),
    # a quantity: "500m", "1Gi", or a number
    "ResourceQuantity": (str, int, float),
}


def _model(name: str) -> Any:
    return getattr(kserve.models, name, None) or getattr(kubernetes.client, name, None)


def problems(value: Any, type_name: str = "V1beta1InferenceService", path: str = "") -> list[str]:
    """Every way ``value`` does not fit ``type_name``; empty when it fits."""
    where = path or "<root>"
    if value is None:
        return []
    if type_name in _SCALARS:
        allowed = _SCALARS[type_name]
        if isinstance(value, bool) and bool not in allowed and object not in allowed:
            return [f"{where}: must be {type_name}, got a bool"]
        if not isinstance(value, allowed):
            return [f"{where}: must be {type_name}, got {type(value).__name__}"]
        return []
    listed = _LIST.fullmatch(type_name)
    if listed:
        if not isinstance(value, list):
            return [f"{where}: must be a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in problems(item, listed.group(1), f"{path}[{i}]")]
    mapped = _DICT.fullmatch(type_name)
    if mapped:
        if not isinstance(value, dict):
            return [f"{where}: must be a mapping, got {type(value).__name__}"]
        return [p for key, item in value.items()
                for p in [*problems(key, mapped.group(1), f"{path}.{key}"),
                          *problems(item, mapped.group(2), f"{path}.{key}")]]
    cls = _model(type_name)
    if cls is None:
        return [f"{where}: the SDK has no type {type_name!r}"]
    if not isinstance(value, dict):
        return [f"{where}: must be a mapping ({type_name}), got {type(value).__name__}"]
    fields = {json_name: attribute for attribute, json_name in cls.attribute_map.items()}
    found: list[str] = []
    for key, item in value.items():
        if key not in fields:
            found.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        found += problems(item, cls.openapi_types[fields[key]], f"{path}.{key}")
    if not found:
        try:  # required fields and enums, as the class's setters check them
            cls(**{fields[key]: item for key, item in value.items()})
        except (ValueError, TypeError) as error:
            found.append(f"{where} ({type_name}): {error}")
    return found
