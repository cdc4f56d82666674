"""``InferenceFunctionModel``: seed 003's ``inference`` function as a ``core`` model object.

``predict(requests)`` takes a list of calls, each ``{"parameters", "inputs", "output_fields"}``,
and returns one answer per call: ``{"outputs": [...]}`` or ``{"error": "...", "status": ...}``
(with ``"detail"`` for a refused call). Calls :meth:`InferenceFunctionModel.prepare` made
(``/inference``, V2) are run as they are; any other call (``POST /predict``) is prepared first,
so every path gets the same checks, the exchange folder's boundary included (the rules are in
:mod:`core_mlcomponent.files`). Because the calls are the rows argument, every architecture
works, batching included (a batch is several calls).

**The model object between calls.** The function returns ``(outputs, model)``; that ``model``
is passed to the next call, and the first call gets ``model=None``. The objects live in a pool
of at most ``max_models`` slots: a call takes an idle model object (or, while fewer than
``max_models`` exist, starts a new slot with ``None``), and puts back what the function
returned. With ``max_models = 1`` (the default) this is a lock around the call: calls run one at
a time and each gets exactly what the previous one returned. With ``max_models = N`` up to N
calls run at once, each with its own model object, and no object is ever used by two calls at
the same time. When the function raises, the model object it was given goes back to the pool.

It also speaks the V2 model protocol of ``core-protocol-v2`` (``v2_metadata``, ``v2_data``,
``v2_outputs``), so ``/v2/models/<name>/infer`` reaches the same function: ``str`` travels as
``BYTES`` (UTF-8), ``FILE`` as ``BYTES`` holding the file's content.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import threading
from collections.abc import Callable
from typing import Any

from core.errors import InvalidRequestBody, PredictError, RequestError, ValidationError
from core_mlcomponent import spec as specs
from core_mlcomponent.files import FileExchange, Refused

logger = logging.getLogger("core")

_V2_OF = {"FP32": "FP32", "FP64": "FP64", "INT32": "INT32", "str": "BYTES", "FILE": "BYTES"}


class ModelPool:
    """At most ``size`` model objects, each used by one call at a time (see module docs)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._idle: list[Any] = []
        self._slots = 0
        self._cond = threading.Condition()

    def acquire(self) -> Any:
        with self._cond:
            while not self._idle and self._slots >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._slots += 1
            return None

    def release(self, model: Any) -> None:
        with self._cond:
            self._idle.append(model)
            self._cond.notify()

    @property
    def slots(self) -> int:
        return self._slots


#: Multipart files by input name: ``(content, filename, content_type)`` each.
Uploads = dict[str, list[tuple[bytes, str | None, str | None]]]

#: Where a FILE input's content comes from: ``("bytes", (content, filename), content_type)``
#: or ``("path", checked path, content_type)``.
Source = tuple[str, Any, "str | None"]

_OUTPUT_DATA = ("the server chooses where outputs are written (a fresh file in the exchange folder for "
                "a FILE output, given to the function in output_fields); leave 'data' out")


def _detail(loc: list[str | int], msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


class PreparedCall(dict[str, Any]):
    """A call :meth:`InferenceFunctionModel.prepare` checked: ``{"parameters", "inputs",
    "output_fields"}``. Only the server makes these (JSON cannot), so :meth:`predict` knows
    which calls still need the checks: every other call (``POST /predict``) gets them there."""


def error_answer(error: RequestError) -> dict[str, Any]:
    """A refused call as one answer of :meth:`InferenceFunctionModel.predict`."""
    return {"error": error.msg, "status": error.status_code, "detail": error.details}


def answer_error(answer: dict[str, Any]) -> RequestError:
    """The :class:`~core.errors.RequestError` for an ``{"error", "status"}`` answer."""
    status = answer.get("status", 500)
    if status >= 500:
        return PredictError(answer["error"])
    if status == 422 and answer.get("detail"):
        return ValidationError(answer["detail"])
    return InvalidRequestBody(answer["error"])


class InferenceFunctionModel:
    """The model object the ``mlcomponent`` storage hands to ``core``."""

    def __init__(self, function: Callable[..., Any], *, function_name: str, model_key: str,
                 exchange: FileExchange, max_models: int = 1) -> None:
        self.function = function
        self.function_name = function_name
        self.model_key = model_key
        self.exchange = exchange
        self.spec = specs.parse(function)
        self.pool = ModelPool(max_models)
        self.calls = 0

    # ------------------------------------------------------------------ describing

    def describe(self) -> dict[str, Any]:
        """What ``/info`` and ``GET /inference`` show."""
        return {
            "function": self.function_name,
            "model_key": self.model_key,
            "files_path": str(self.exchange.root),
            "file_ttl": self.exchange.ttl,
            "max_models": self.pool.size,
            "model_objects": self.pool.slots,
            "calls": self.calls,
            "spec": self.spec.to_dict(),
        }

    # ------------------------------------------------------------------ checking a request

    def prepare(self, body: Any, uploads: Uploads | None = None, *,
                inline_files: bool = True) -> PreparedCall:
        """Check a seed-format request against the spec, save its files, and return the call.

        Every value that names a file is checked here against the exchange folder (see the
        rules in :mod:`core_mlcomponent.files`): FILE inputs by the datatype the request gives
        or, when it gives none, the one the docstring declares; output paths are the server's.

        :param uploads: multipart files by input name: ``(content, filename, content_type)``.
        :param inline_files: whether the body may carry ``inline_files`` (``/inference`` only).
        :raises InvalidRequestBody: (400) not a JSON object.
        :raises ValidationError: (422) unknown or missing inputs, wrong datatypes, values or
            shapes, a FILE reference that is not a file in the exchange folder, an output path.
        """
        if not isinstance(body, dict):
            raise InvalidRequestBody("the request must be a JSON object with 'inputs'", loc=["body"])
        known = ("parameters", "inputs", "output_fields", *(("inline_files",) if inline_files else ()))
        unknown = [k for k in body if k not in known]
        if unknown:
            raise ValidationError([_detail(["body", k], f"unknown field; a request has {', '.join(known)}",
                                           "extra_forbidden") for k in unknown])
        parameters = body.get("parameters") or []
        if not isinstance(parameters, list):
            raise ValidationError([_detail(["body", "parameters"], "must be a list of [name, value] pairs")])
        raw_inputs = body.get("inputs") or []
        if not isinstance(raw_inputs, list) or not all(isinstance(i, dict) for i in raw_inputs):
            raise ValidationError([_detail(["body", "inputs"], "must be a list of input objects")])
        uploads = dict(uploads or {})
        listed: list[tuple[dict[str, Any], list[tuple[bytes, str | None, str | None]] | None]] = []
        for item in raw_inputs:  # a listed FILE input whose content came as a multipart part
            name = item.get("name")
            files = uploads.pop(name, None) if isinstance(name, str) and "data" not in item \
                and "base64" not in item else None
            listed.append((item, files))
        for name, files in uploads.items():  # parts not listed in the JSON: FILE inputs
            listed.append(({"name": name, "datatype": "FILE"}, files))

        details: list[dict[str, Any]] = []
        inputs = [self._check_input(i, item, files, details) for i, (item, files) in enumerate(listed)]
        names = [i["name"] for i in inputs if i is not None]
        if self.spec.inputs:
            for name in names:
                if name not in self.spec.inputs:
                    details.append(_detail(["body", "inputs", name],
                                           f"unknown input; the function takes: {', '.join(self.spec.inputs)}",
                                           "extra_forbidden"))
            for name, field in self.spec.inputs.items():
                if not field.optional and name not in names:
                    details.append(_detail(["body", "inputs", name],
                                           f"missing input ({field.datatype or 'any datatype'})", "missing"))
        seen: set[str] = set()
        for name in names:
            if name in seen:
                details.append(_detail(["body", "inputs", name], "input given twice"))
            seen.add(name)
        output_fields = self._output_fields(body.get("output_fields"), details)
        if details:
            raise ValidationError(details)
        # every check passed: only now write files
        ready = [self._materialise(i) for i in inputs if i is not None]
        return PreparedCall(parameters=parameters, inputs=ready, output_fields=output_fields)

    def _check_input(self, index: int, item: dict[str, Any], uploads: list[tuple[bytes, str | None, str | None]]
                     | None, details: list[dict[str, Any]]) -> dict[str, Any] | None:
        name = item.get("name")
        loc: list[str | int] = ["body", "inputs", name if isinstance(name, str) else index]
        if not isinstance(name, str) or not name:
            details.append(_detail(loc, "an input needs a string 'name'", "missing"))
            return None
        datatype = item.get("datatype")
        field = self.spec.inputs.get(name)
        if datatype is None and field is not None and field.datatype:
            datatype = field.datatype
        if datatype is None and uploads is not None:
            datatype = "FILE"
        if datatype not in specs.DATATYPES:
            details.append(_detail([*loc, "datatype"], f"datatype must be one of {', '.join(specs.DATATYPES)}, "
                                   f"got {datatype!r}", "type_error"))
            return None
        if field is not None and field.datatype and field.datatype != datatype:
            details.append(_detail([*loc, "datatype"], f"the function expects {field.datatype}, got {datatype}",
                                   "type_error"))
            return None
        content_type = item.get("content_type") or (field.content_type if field else None)
        out: dict[str, Any] = {"name": name, "datatype": datatype, "content_type": content_type}
        if datatype == "FILE":
            sources = self._file_sources(item, uploads, loc, details)
            if sources is None:
                return None
            count = len(sources)
            out["_sources"] = sources
        else:
            if "data" not in item:
                details.append(_detail([*loc, "data"], "missing data", "missing"))
                return None
            values = specs.flatten(item["data"])
            problem = specs.check_values(datatype, values)
            if problem:
                details.append(_detail([*loc, "data"], problem, "type_error"))
                return None
            out["data"] = values
            count = len(values)
        shape = item.get("shape", [count])
        problem = specs.check_shape(shape, count)
        if problem:
            details.append(_detail([*loc, "shape"], problem, "wrong_shape"))
            return None
        out["shape"] = shape
        return out

    def _file_sources(self, item: dict[str, Any], uploads: list[tuple[bytes, str | None, str | None]] | None,
                      loc: list[str | int], details: list[dict[str, Any]]) -> list[Source] | None:
        """Where a FILE input's content comes from: uploads, base64, or exchanged files (each
        checked against the folder: a regular file there, reached without symlinks)."""
        if uploads is not None:
            return [("bytes", (content, filename), ctype) for content, filename, ctype in uploads]
        if "base64" in item:
            encoded = item["base64"]
            items = encoded if isinstance(encoded, list) else [encoded]
            sources: list[Source] = []
            for text in items:
                try:
                    content = base64.b64decode(text, validate=True) if isinstance(text, str) else None
                except ValueError:
                    content = None
                if content is None:
                    details.append(_detail([*loc, "base64"], "must be base64 text (or a list of them)", "type_error"))
                    return None
                filename = item.get("filename")
                sources.append(("bytes", (content, filename if isinstance(filename, str) else None),
                                item.get("content_type")))
            return sources
        data = item.get("data")
        references: list[Any] = data if isinstance(data, list) else [data]
        if data is None or not all(isinstance(r, str) and r for r in references):
            details.append(_detail(loc, "a FILE input needs an upload (multipart), 'base64' content, or "
                                   "'data' naming a file in the exchange folder", "missing"))
            return None
        sources = []
        for reference in references:
            try:
                path = self.exchange.reference(reference)
            except Refused as error:
                details.append(_detail([*loc, "data"], f"{error}; send the file itself (multipart or base64), "
                                       f"or name one the server gave you", "not_found"))
                return None
            sources.append(("path", path, item.get("content_type")))
        return sources

    def _materialise(self, item: dict[str, Any]) -> dict[str, Any]:
        sources = item.pop("_sources", None)
        if sources is None:
            return item
        paths = []
        for kind, value, ctype in sources:
            if kind == "path":
                paths.append(str(value))
            else:
                content, filename = value
                hint = filename or (item["name"] + (mimetypes.guess_extension(ctype or "") or ""))
                paths.append(str(self.exchange.save(content, hint)))
            item["content_type"] = item["content_type"] or ctype
        item["data"] = paths[0] if len(paths) == 1 and item["shape"] in ([1], []) else paths
        return item

    def _output_fields(self, raw: Any, details: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if raw is None:
            raw = [{"name": f.name, "datatype": f.datatype, "content_type": f.content_type}
                   for f in self.spec.outputs.values()]
        if not isinstance(raw, list):
            details.append(_detail(["body", "output_fields"], "must be a list of {name, datatype} objects"))
            return []
        fields = []
        for index, item in enumerate(raw):
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                details.append(_detail(["body", "output_fields", index], "needs a string 'name'", "missing"))
                continue
            name = item["name"]
            if not _empty(item.get("data")):
                details.append(_detail(["body", "output_fields", name, "data"], _OUTPUT_DATA, "extra_forbidden"))
                continue
            declared = self.spec.outputs.get(name)
            if self.spec.outputs and declared is None:
                details.append(_detail(["body", "output_fields", name],
                                       f"unknown output; the function gives: {', '.join(self.spec.outputs)}",
                                       "extra_forbidden"))
                continue
            datatype = item.get("datatype") or (declared.datatype if declared else None)
            if datatype is not None and datatype not in specs.DATATYPES:
                details.append(_detail(["body", "output_fields", name, "datatype"],
                                       f"must be one of {', '.join(specs.DATATYPES)}", "type_error"))
                continue
            if declared is not None and declared.datatype and datatype != declared.datatype:
                details.append(_detail(["body", "output_fields", name, "datatype"],
                                       f"the function gives {declared.datatype}, not {datatype}", "type_error"))
                continue
            field = {"name": name, "datatype": datatype,
                     "content_type": item.get("content_type") or (declared.content_type if declared else None)}
            if datatype == "FILE":  # the server says where to write; a client cannot
                ext = mimetypes.guess_extension(field["content_type"] or "") or ""
                field["data"] = str(self.exchange.new_path(name + ext))
            if "shape" in item:
                field["shape"] = item["shape"]
            fields.append(field)
        return fields

    # ------------------------------------------------------------------ calling

    def predict(self, requests: Any) -> list[dict[str, Any]]:
        """Run each call; one answer per call (see the module docstring). A call that did not
        come through :meth:`prepare` (``POST /predict``) goes through it here, so it gets the
        same checks; a refused call is answered ``{"error", "status", "detail"}``."""
        calls = requests.tolist() if hasattr(requests, "tolist") else list(requests)
        return [self._run(call) for call in calls]

    def _run(self, call: Any) -> dict[str, Any]:
        if not isinstance(call, PreparedCall):
            try:
                call = self.prepare(call, inline_files=False)
            except RequestError as error:
                return error_answer(error)
        try:
            self._gate(call)
        except RequestError as error:
            return error_answer(error)
        model = self.pool.acquire()
        try:
            result = self.function(call["parameters"], call["inputs"], call["output_fields"],
                                   self.model_key, model)
        except Exception as error:
            self.pool.release(model)
            logger.exception("the inference function %s raised", self.function_name)
            return {"error": f"{self.function_name} raised {type(error).__name__}: {error}", "status": 500}
        if not (isinstance(result, tuple) and len(result) == 2):
            self.pool.release(model)
            return {"error": f"{self.function_name} must return (outputs, model), got "
                             f"{type(result).__name__}", "status": 500}
        outputs, new_model = result
        self.pool.release(new_model)
        self.calls += 1
        try:
            return {"outputs": self._collect(outputs, call["output_fields"])}
        except ValueError as error:  # Refused included
            return {"error": f"{self.function_name} returned a bad output: {error}", "status": 500}

    def _gate(self, call: PreparedCall) -> None:
        """The last check before the function runs: every FILE input is still a regular file
        in the folder (nothing was swapped for a symlink since :meth:`prepare`), and every
        output path is a fresh generated one."""
        details = []
        for item in call["inputs"]:
            if item["datatype"] == "FILE":
                data = item["data"]
                for path in data if isinstance(data, list) else [data]:
                    try:
                        self.exchange.reference(path)
                    except Refused as error:
                        details.append(_detail(["body", "inputs", item["name"], "data"], str(error), "not_found"))
        for field in call["output_fields"]:
            if "data" in field and not self.exchange.is_fresh(field["data"]):
                details.append(_detail(["body", "output_fields", field["name"], "data"], _OUTPUT_DATA,
                                       "extra_forbidden"))
        if details:
            raise ValidationError(details)

    def _collect(self, outputs: Any, fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and "name" in o for o in outputs):
            raise ValueError("outputs must be a list of {name, datatype, data, shape} dicts")
        wanted = {f["name"]: f for f in fields}
        collected = []
        for output in outputs:
            if wanted and output["name"] not in wanted:
                continue
            output = dict(output)
            declared = self.spec.outputs.get(output["name"])
            if output.get("datatype") is None:  # a FILE output is one by any account
                datatype = wanted.get(output["name"], {}).get("datatype") or (declared.datatype if declared else None)
                if datatype is not None:
                    output["datatype"] = datatype
            if output.get("datatype") == "FILE":
                data = output.get("data")
                paths = data if isinstance(data, list) else [data]
                if not all(isinstance(p, str) and p for p in paths):
                    raise ValueError(f"FILE output {output['name']!r} must give a path, got {data!r}")
                names = [self.exchange.adopt(p) for p in paths]
                output["data"] = names if isinstance(data, list) else names[0]
                output.setdefault("content_type", mimetypes.guess_type(names[0])[0])
            output.setdefault("shape", [len(output["data"])] if isinstance(output.get("data"), list) else [1])
            collected.append(output)
        return collected

    # ------------------------------------------------------------------ the V2 model protocol

    def v2_metadata(self) -> dict[str, Any]:
        def describe(fields: dict[str, specs.Field]) -> list[dict[str, Any]]:
            return [{"name": f.name, "datatype": _V2_OF.get(f.datatype or "", "BYTES"), "shape": [-1]}
                    for f in fields.values()]

        return {"platform": "mlcomponent", "inputs": describe(self.spec.inputs),
                "outputs": describe(self.spec.outputs)}

    def v2_data(self, inputs: list[dict[str, Any]], parameters: dict[str, Any],
                outputs: list[str] | None) -> dict[str, Any]:
        """V2 inputs -> a prepared call (``{"requests": [call]}``)."""
        items: list[dict[str, Any]] = []
        uploads: Uploads = {}
        for tensor in inputs:
            name, v2type = tensor["name"], tensor["datatype"]
            field = self.spec.inputs.get(name)
            wanted = field.datatype if field is not None and field.datatype else None
            flat = tensor["data"].ravel().tolist()
            params = tensor.get("parameters") or {}
            if v2type == "BYTES" and wanted == "FILE":
                ctype = params.get("content_type") or (field.content_type if field else None)
                uploads[name] = [(bytes(b) if not isinstance(b, str) else b.encode(),
                                  params.get("filename"), ctype) for b in flat]
                continue
            if v2type == "BYTES":
                try:
                    values = [b.decode() if isinstance(b, bytes) else str(b) for b in flat]
                except UnicodeDecodeError:
                    raise ValueError(f"input {name!r}: BYTES for a str input must be UTF-8 text") from None
                items.append({"name": name, "datatype": "str", "data": values, "shape": tensor["shape"]})
                continue
            datatype = v2type if v2type in ("FP32", "FP64", "INT32") else None
            if datatype is None:
                raise ValueError(f"input {name!r}: datatype {v2type} has no MLComponent equivalent; "
                                 f"send FP32, FP64, INT32 or BYTES")
            items.append({"name": name, "datatype": datatype, "data": flat, "shape": tensor["shape"]})
        body: dict[str, Any] = {
            "parameters": [[k, v] for k, v in parameters.items()],
            "inputs": items,
        }
        if outputs is not None:
            body["output_fields"] = outputs
        try:
            call = self.prepare(body, uploads, inline_files=False)
        except ValidationError as error:
            raise ValueError("; ".join(f"{'.'.join(map(str, d['loc'][1:]))}: {d['msg']}"
                                       for d in error.details)) from None
        except InvalidRequestBody as error:
            raise ValueError(error.msg) from None
        return {"requests": [call]}

    def v2_outputs(self, result: Any) -> list[dict[str, Any]]:
        answer = result[0] if isinstance(result, list) else result
        if "error" in answer:
            raise answer_error(answer)
        tensors = []
        for output in answer["outputs"]:
            datatype = output.get("datatype")
            data = output.get("data")
            if datatype == "FILE":
                names = data if isinstance(data, list) else [data]
                contents = []
                for name in names:
                    content = self.exchange.read(name)
                    if content is None:
                        raise PredictError(f"output file {name!r} disappeared")
                    contents.append(content)
                ctype = output.get("content_type")
                tensors.append({"name": output["name"], "datatype": "BYTES", "data": contents,
                                "shape": [len(contents)],
                                "parameters": {"content_type": ctype} if ctype else {}})
            elif datatype == "str":
                values = specs.flatten(data)
                tensors.append({"name": output["name"], "datatype": "BYTES",
                                "data": [str(v).encode() for v in values], "shape": output.get("shape")})
            else:
                tensors.append({"name": output["name"], "datatype": _V2_OF.get(datatype or ""),
                                "data": specs.flatten(data), "shape": output.get("shape")})
        return tensors
