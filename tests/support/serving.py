"""Configs for the test servers (:class:`core.testing.Server`, through the ``serve`` fixture)."""

from __future__ import annotations

from typing import Any


#: A config serving ``support/models.py``'s objects through the dotted-path storage: core alone.
def object_config(obj: str, **extra: Any) -> dict[str, Any]:
    return {"name": "test-model", "storage_type": "components.ObjectStorage",
            "storage_kwargs": {"spec": obj}, **extra}
