"""What an exported program (``torch.export``) declares: its inputs' and outputs' dtypes and
shapes, read from the graph's placeholders and output, so that core validates the request
against them (a row of the wrong width is a 422) and V2 metadata lists them."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from core.analysis import Outputs

from core_binarizer_torch.model import python_signature, tensor_of


def exported_interface(program: Any, module: Any) -> tuple[inspect.Signature, Outputs | None]:
    """The signature of the exported module's ``forward`` with each user input annotated by
    its :class:`core.Tensor` (dynamic dimensions ``None``), and the declared outputs: one
    named ``output``, or ``output_0``, ``output_1``... for a tuple; ``None`` when an output is
    not a tensor of a dtype core can declare, or the outputs are nested."""
    signature = python_signature(module.forward)
    graph_signature = program.graph_signature
    nodes = {node.name: node for node in program.graph.nodes}
    inputs = [tensor_of(nodes[name].meta.get("val")) if name in nodes else None
              for name in graph_signature.user_inputs]
    parameters = list(signature.parameters.values())
    if len(inputs) == len(parameters):
        parameters = [p.replace(annotation=torch.Tensor if t is None else t)
                      for p, t in zip(parameters, inputs)]
    return signature.replace(parameters=parameters), _outputs(program, nodes)


def _outputs(program: Any, nodes: dict[str, Any]) -> Outputs | None:
    try:
        names = list(program.graph_signature.user_outputs)
        spec = program.call_spec.out_spec
    except Exception:
        return None
    tensors = [tensor_of(nodes[name].meta.get("val")) if name in nodes else None for name in names]
    if not tensors or any(t is None for t in tensors):
        return None
    if len(tensors) == 1 and _is_leaf(spec):
        return Outputs({"output": tensors[0]})
    if getattr(spec, "type", None) in (tuple, list) and all(_is_leaf(c) for c in _children(spec)):
        return Outputs({f"output_{index}": tensor for index, tensor in enumerate(tensors)})
    return None


def _children(spec: Any) -> list[Any]:
    children = getattr(spec, "children", None)  # torch >= 2.10; children_specs before
    return list(children() if callable(children) else getattr(spec, "children_specs", []))


def _is_leaf(spec: Any) -> bool:
    is_leaf = getattr(spec, "is_leaf", None)
    return bool(is_leaf()) if callable(is_leaf) else False
