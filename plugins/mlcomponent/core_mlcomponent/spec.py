"""The docstring specification of an ``inference`` function, and checking requests against it.

Seed 003 asks that the format of ``inputs`` be written in the function's docstring. ``core``
reads Sphinx-style fields::

    :param inputs.age: the age of each person, in years
    :type inputs.age: FP32
    :param inputs.table: a CSV file with the columns age, height
    :type inputs.table: FILE text/csv
    :param inputs.note: free text
    :type inputs.note: str, optional
    :param outputs.predictions: a CSV with one prediction per row
    :type outputs.predictions: FILE text/csv

A ``:type:`` is a datatype (``FP32``, ``FP64``, ``INT32``, ``FILE`` or ``str``), then
optionally a MIME type (``text/csv``) and ``optional``, separated by spaces or commas. An input
or output with a ``:param:`` and no ``:type:`` accepts any datatype. A function without any
``inputs.`` field has no input specification: every input is accepted.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import attrs

#: The datatypes of seed 003, by the spelling a request uses.
DATATYPES = ("FP32", "FP64", "INT32", "FILE", "str")
_CANONICAL = {d.lower(): d for d in DATATYPES}

_FIELD = re.compile(r"^\s*:(param|type)\s+(inputs|outputs)\.([A-Za-z0-9_.\-]+)\s*:\s*(.*)$")
_OTHER_FIELD = re.compile(r"^\s*:[a-z]+[^:]*:")
_INT32 = (-(2**31), 2**31 - 1)


class SpecError(ValueError):
    """The docstring's specification cannot be read (a start-up error)."""


@attrs.define
class Field:
    """One input or output named by the docstring."""

    name: str
    description: str = ""
    datatype: str | None = None
    content_type: str | None = None
    optional: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "datatype": self.datatype,
            "content_type": self.content_type, "required": not self.optional,
        }


@attrs.define
class Spec:
    """What the docstring says; empty dicts when it says nothing."""

    inputs: dict[str, Field] = attrs.Factory(dict)
    outputs: dict[str, Field] = attrs.Factory(dict)
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "inputs": [f.to_dict() for f in self.inputs.values()],
            "outputs": [f.to_dict() for f in self.outputs.values()],
        }


def parse(function: Callable[..., Any]) -> Spec:
    """Read the specification from ``function``'s docstring."""
    doc = inspect.getdoc(function) or ""
    spec = Spec(summary=doc.split("\n\n", 1)[0].strip() if doc and not doc.lstrip().startswith(":") else "")
    current: tuple[str, str, str] | None = None  # (kind, section, name) of the field being read
    for line in doc.splitlines():
        match = _FIELD.match(line)
        if match is None:
            if _OTHER_FIELD.match(line) or not line.strip():
                current = None
            elif current is not None and current[0] == "param":  # a continued description
                field = _section(spec, current[1])[current[2]]
                field.description = f"{field.description} {line.strip()}".strip()
            continue
        kind, section, name, text = match.groups()
        fields = _section(spec, section)
        field = fields.setdefault(name, Field(name))
        if kind == "param":
            field.description = text.strip()
        else:
            _read_type(field, text, f"{getattr(function, '__name__', 'inference')}: :type {section}.{name}:")
        current = (kind, section, name)
    return spec


def _section(spec: Spec, section: str) -> dict[str, Field]:
    return spec.inputs if section == "inputs" else spec.outputs


def _read_type(field: Field, text: str, where: str) -> None:
    words = [w for w in re.split(r"[,\s]+", text.strip()) if w]
    if not words:
        raise SpecError(f"{where} names no datatype; use one of {', '.join(DATATYPES)}")
    datatype = _CANONICAL.get(words[0].lower())
    if datatype is None:
        raise SpecError(f"{where} {words[0]!r} is not a datatype; use one of {', '.join(DATATYPES)}")
    field.datatype = datatype
    for word in words[1:]:
        if word.lower() == "optional":
            field.optional = True
        elif "/" in word:
            field.content_type = word
        else:
            raise SpecError(f"{where} does not understand {word!r}; write e.g. 'FILE text/csv, optional'")


# ---------------------------------------------------------------------- checking values


def flatten(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [value]
    out: list[Any] = []
    for item in value:
        if isinstance(item, list):
            out.extend(flatten(item))
        else:
            out.append(item)
    return out


def check_values(datatype: str, values: list[Any]) -> str | None:
    """Why ``values`` do not fit ``datatype`` (``None`` when they do)."""
    for index, value in enumerate(values):
        if datatype in ("FP32", "FP64"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            want = "a number"
        elif datatype == "INT32":
            ok = isinstance(value, int) and not isinstance(value, bool) and _INT32[0] <= value <= _INT32[1]
            want = "an integer in the INT32 range"
        elif datatype == "str":
            ok = isinstance(value, str)
            want = "a string"
        else:
            return None
        if not ok:
            return f"element {index} must be {want}, got {type(value).__name__} {str(value)[:40]!r}"
    return None


def check_shape(shape: Any, count: int) -> str | None:
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        return f"shape must be a list of non-negative integers, got {shape!r}"
    if math.prod(shape) != count:
        return f"shape {shape} holds {math.prod(shape)} value(s) but data has {count}"
    return None
