"""Check a LightGBM text model before LightGBM reads it.

LightGBM's loader (``GBDT::LoadModelFromString``, ``Tree::Tree``) trusts the text: a truncated
or damaged file makes it read past the end of its buffer or its arrays (a segmentation fault,
at load or at the first prediction), or fail inside its parallel tree parsing
(``std::terminate``), and the server process dies without a word. So the text is checked here
first, in Python, for everything that loader and the trees' traversal take on trust, lines
split the way LightGBM splits them (at ``\\r`` or ``\\n``):

* the header (``key=value`` lines, ``max_feature_idx`` a number) is followed by the trees,
  then ``end of trees``;
* each tree is a ``Tree=N`` line, then at most 22 ``key=value`` lines (what LightGBM reads of
  a tree), then an empty line; ``num_leaves`` and ``num_cat`` are numbers, every array has as
  many numbers as ``num_leaves`` says, the children make one tree (each node and leaf the
  child of one node), split features are features of the model, categorical splits point at
  categories the tree has;
* ``tree_sizes`` (the byte size of each tree, for the parallel parse) lists as many trees as
  there are;
* the ``parameters:`` section, when there is one, holds ``[key: value]`` lines up to
  ``end of parameters``.

The ``tree_sizes`` line is then left out of the text handed to LightGBM, so that it parses the
trees one after the other in the calling thread: an error it still finds is then an exception
(``LightGBMError``) instead of an abort. The model is the same (LightGBM writes ``tree_sizes``
again when it saves it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_TREE = b"Tree="
_END = b"end of trees"
_SIZES = b"tree_sizes="
_PARAMETERS = b"parameters:"
_PARAMETERS_END = b"end of parameters"
_PARAMETER = re.compile(rb"\[[^:\]]+: .*\]")
_LINE = re.compile(rb"[^\r\n]*")
#: The lines of a tree LightGBM reads (``Tree::Tree``'s ``max_num_line``).
_MAX_TREE_LINES = 22
#: Arrays of one value per leaf, and of one per split (``num_leaves - 1``).
_PER_LEAF = (b"leaf_value", b"leaf_weight", b"leaf_count")
_PER_SPLIT = (b"left_child", b"right_child", b"split_feature", b"threshold", b"split_gain",
              b"internal_value", b"internal_weight", b"internal_count", b"decision_type")
_CATEGORICAL = 1  # decision_type's bit of a categorical split


class DamagedModel(ValueError):
    """The text is not a complete LightGBM model; the message says what is wrong."""


def _line(data: bytes, start: int) -> tuple[bytes, int]:
    """The line at ``start`` and the index after its end of line (``\\r``, ``\\n`` or both),
    as LightGBM's ``GetLine`` and ``SkipNewLine`` take them."""
    match = _LINE.match(data, start)
    assert match is not None  # the pattern matches the empty string
    position = match.end()
    if data[position:position + 1] == b"\r":
        position += 1
    if data[position:position + 1] == b"\n":
        position += 1
    return match.group(), position


def prepare(data: bytes) -> bytes:
    """``data`` checked (:class:`DamagedModel` names the first problem) and without its
    ``tree_sizes`` line."""
    end = data.find(b"\n" + _END)
    if end < 0:
        raise DamagedModel(f"no {_END.decode()!r} line after the trees")
    sizes_line: tuple[int, int] | None = None  # where the tree_sizes line is
    listed: int | None = None
    features: int | None = None
    position = 0
    trees = 0
    while position <= end:  # the header, then the trees
        line, after = _line(data, position)
        if line.startswith(_TREE):
            if features is None:
                raise DamagedModel("the header has no max_feature_idx")
            position = _tree(data, after, end, line, features)
            trees += 1
            continue
        if trees:
            if line:
                raise DamagedModel(f"unexpected line after tree {trees - 1}: {_shown(line)}")
        elif line.startswith(_SIZES):
            sizes_line = (position, after)
            listed = len(_numbers(line[len(_SIZES):], int, "tree_sizes"))
        elif line.startswith(b"max_feature_idx="):
            features = _number(line[len(b"max_feature_idx="):], "max_feature_idx") + 1
        position = after
    if listed is not None and listed != trees:
        raise DamagedModel(f"tree_sizes lists {listed} trees, the file holds {trees}")
    _parameters(data, end)
    if sizes_line is None:
        return data
    return data[: sizes_line[0]] + data[sizes_line[1]:]


def _tree(data: bytes, position: int, end: int, title: bytes, features: int) -> int:
    """Check the tree whose ``Tree=N`` line ends at ``position``; the index after it."""
    name = _shown(title)
    fields: dict[bytes, bytes] = {}
    while True:
        if position > end:
            raise DamagedModel(f"{name} is cut short")
        line, position = _line(data, position)
        if not line:
            break
        key, equals, value = line.partition(b"=")
        if not equals:
            raise DamagedModel(f"{name} has a line without '=': {_shown(line)}")
        fields[key] = value
        if len(fields) > _MAX_TREE_LINES:
            raise DamagedModel(f"{name} has more than {_MAX_TREE_LINES} lines")
    try:
        _check_tree(fields, features)
    except DamagedModel as error:
        raise DamagedModel(f"{name}: {error}") from None
    return position


def _check_tree(fields: dict[bytes, bytes], features: int) -> None:
    """What ``Tree::Tree`` and the traversal of a tree take on trust."""
    leaves = _number(fields.get(b"num_leaves"), "num_leaves")
    categories = _number(fields.get(b"num_cat"), "num_cat")
    if leaves < 1 or categories < 0:
        raise DamagedModel(f"num_leaves {leaves}, num_cat {categories}")
    if b"leaf_value" not in fields:
        raise DamagedModel("no leaf_value")
    arrays: dict[bytes, list[float]] = {}
    for key in (*_PER_LEAF, *_PER_SPLIT):
        if key in fields:
            expected = leaves if key in _PER_LEAF else leaves - 1
            values = _numbers(fields[key], float, key.decode()) if expected else []
            if len(values) != expected:
                raise DamagedModel(f"{key.decode()} has {len(values)} values, not {expected}")
            arrays[key] = values
    linear = fields.get(b"is_linear", b"0").strip() not in (b"", b"0")
    if linear:
        _check_linear(fields, leaves, features)
    if leaves == 1:
        return
    for key in (b"left_child", b"right_child", b"split_feature", b"threshold"):
        if key not in arrays:
            raise DamagedModel(f"no {key.decode()}")
    children = arrays[b"left_child"] + arrays[b"right_child"]
    if sorted(children) != [-float(leaf) for leaf in range(leaves, 0, -1)] + [
            float(node) for node in range(1, leaves - 1)]:
        raise DamagedModel("the children do not make one tree")
    if any(not 0 <= f < features or f != int(f) for f in arrays[b"split_feature"]):
        raise DamagedModel(f"a split_feature is not one of the {features} features")
    decisions = arrays.get(b"decision_type", [0.0] * (leaves - 1))
    for decision, threshold in zip(decisions, arrays[b"threshold"]):
        if int(decision) & _CATEGORICAL and not 0 <= threshold < categories:
            raise DamagedModel(f"a categorical split points at category {threshold} of "
                               f"{categories}")
    if categories:
        bounds = _numbers(fields.get(b"cat_boundaries", b""), int, "cat_boundaries")
        if len(bounds) != categories + 1 or bounds[0] != 0 or bounds != sorted(bounds):
            raise DamagedModel("cat_boundaries does not fit num_cat")
        values = _numbers(fields.get(b"cat_threshold", b""), int, "cat_threshold")
        if len(values) != bounds[-1]:
            raise DamagedModel("cat_threshold does not fit cat_boundaries")


def _check_linear(fields: dict[bytes, bytes], leaves: int, features: int) -> None:
    """The arrays of a linear tree (one model per leaf)."""
    if len(_numbers(fields.get(b"leaf_const", b""), float, "leaf_const")) not in (0, leaves):
        raise DamagedModel("leaf_const does not have one value per leaf")
    counts = _numbers(fields.get(b"num_features", b""), int, "num_features")
    if not counts:
        return
    if len(counts) != leaves or min(counts) < 0:
        raise DamagedModel("num_features does not have one count per leaf")
    used = _numbers(fields.get(b"leaf_features", b""), int, "leaf_features")
    coefficients = _numbers(fields.get(b"leaf_coeff", b""), float, "leaf_coeff")
    if len(used) != sum(counts) or len(coefficients) != sum(counts):
        raise DamagedModel("leaf_features and leaf_coeff do not fit num_features")
    if any(not 0 <= f < features for f in used):
        raise DamagedModel(f"a leaf_feature is not one of the {features} features")


def _number(value: bytes | None, key: str) -> int:
    if value is None:
        raise DamagedModel(f"no {key}")
    try:
        return int(value)
    except ValueError:
        raise DamagedModel(f"{key} is not a number: {_shown(value)}") from None


def _numbers(value: bytes, kind: Callable[[str], float], key: str) -> list[float]:
    try:
        return [kind(v) for v in value.decode("ascii").split()]
    except (ValueError, UnicodeDecodeError):
        raise DamagedModel(f"{key} is not a list of numbers") from None


def _parameters(data: bytes, start: int) -> None:
    """Check the ``parameters:`` section after the trees, if there is one: ``[key: value]``
    lines up to ``end of parameters`` (LightGBM splits each at ``:`` without a check)."""
    begin = data.find(b"\n" + _PARAMETERS, start)
    if begin < 0:
        return
    line, position = _line(data, begin + 1)
    if line != _PARAMETERS:
        return
    if data.find(b"\n" + _PARAMETERS_END, position - 1) < 0:
        raise DamagedModel(f"no {_PARAMETERS_END.decode()!r} line after the parameters")
    while True:
        line, position = _line(data, position)
        if line == _PARAMETERS_END:
            return
        if line and not _PARAMETER.fullmatch(line):
            raise DamagedModel(f"a parameter line is not [key: value]: {_shown(line)}")


def _shown(line: bytes) -> str:
    text = line[:60].decode("utf-8", "replace")
    return repr(text + ("..." if len(line) > 60 else ""))
