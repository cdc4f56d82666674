"""The MLComponent plugin as its users run it: a real server, real HTTP clients."""

from __future__ import annotations

import base64
import concurrent.futures
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

FUNCTIONS = '''
import threading, time
from pathlib import Path

_active = 0
_max_active = 0
_guard = threading.Lock()


def echo(parameters, inputs, output_fields, model_key, model=None):
    """Echo inputs back, count calls in the model object.

    :param inputs.x: numbers
    :type inputs.x: FP32
    :param inputs.n: whole numbers
    :type inputs.n: INT32, optional
    :param inputs.label: some text
    :type inputs.label: str, optional
    :param inputs.doc: a text file
    :type inputs.doc: FILE text/plain, optional
    :param outputs.doubled: x * 2
    :type outputs.doubled: FP32
    :param outputs.calls: how many calls this model object has seen
    :type outputs.calls: INT32
    :param outputs.label: the label, upper-cased
    :type outputs.label: str
    :param outputs.upper: the doc file, upper-cased
    :type outputs.upper: FILE text/plain
    :param outputs.seen: what the function received
    :type outputs.seen: str
    """
    global _active, _max_active
    with _guard:
        _active += 1
        _max_active = max(_max_active, _active)
    try:
        params = dict(parameters)
        time.sleep(float(params.get("sleep", 0)))
        model = {"calls": 0, "key": model_key} if model is None else model
        model["calls"] += 1
        by_name = {i["name"]: i for i in inputs}
        wanted = {f["name"]: f for f in output_fields}
        out = [{"name": "doubled", "datatype": "FP32", "data": [v * 2 for v in by_name["x"]["data"]],
                "shape": by_name["x"]["shape"]},
               {"name": "calls", "datatype": "INT32", "data": [model["calls"]], "shape": [1]},
               {"name": "seen", "datatype": "str", "shape": [1],
                "data": [repr(sorted((i["name"], i["datatype"], i["data"] if i["datatype"] == "FILE" else None)
                                    for i in inputs)) + "|max_active=%d" % _max_active]}]
        if "label" in by_name:
            out.append({"name": "label", "datatype": "str", "data": [s.upper() for s in by_name["label"]["data"]],
                        "shape": [len(by_name["label"]["data"])]})
        if "doc" in by_name:
            target = wanted["upper"]["data"] if "upper" in wanted else str(Path(by_name["doc"]["data"]).with_suffix(".up"))
            Path(target).write_text(Path(by_name["doc"]["data"]).read_text().upper())
            out.append({"name": "upper", "datatype": "FILE", "content_type": "text/plain", "data": target, "shape": [1]})
        return out, model
    finally:
        with _guard:
            _active -= 1


def raises(parameters, inputs, output_fields, model_key, model=None):
    """:param inputs.x: numbers
    :type inputs.x: FP32
    """
    model = (model or 0) + 1
    if dict(parameters).get("fail"):
        raise ValueError("x must not be negative (call %d)" % model)
    return [{"name": "calls", "datatype": "INT32", "data": [model], "shape": [1]}], model


def escape(parameters, inputs, output_fields, model_key, model=None):
    """Returns a FILE output outside the exchange folder."""
    return [{"name": "stolen", "datatype": "FILE", "data": "/etc/hostname", "shape": [1]}], model


def wrong_shape(parameters, inputs, output_fields, model_key, model=None):
    return "not a tuple"
'''


@pytest.fixture(scope="module")
def functions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("functions")
    (folder / "mlc_test_functions.py").write_text(textwrap.dedent(FUNCTIONS))
    return folder


def config(functions: Path, files: Path, function: str = "echo", **kwargs: Any) -> dict[str, Any]:
    return {
        "name": "mlc",
        "storage_type": "mlcomponent",
        "storage_kwargs": {
            "python_function": f"mlc_test_functions.{function}",
            "python_path": str(functions),
            "model_key": "/models/key",
            "files_path": str(files),
            **kwargs,
        },
        "data_transformer_for_predict": "passthrough",
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exchange") / "files"


@pytest.fixture(scope="module")
def echo(serve: Any, functions: Path, files: Path) -> Any:
    return serve(config(functions, files, max_models=1))


def call(server: Any, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(server.url + "/inference", json=body, timeout=30, **kwargs)


def x(values: list[float]) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "data": values, "shape": [len(values)]}


def outputs(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return {o["name"]: o for o in response.json()["outputs"]}


def test_numbers_in_and_out_and_the_model_carried_between_calls(echo: Any) -> None:
    first = outputs(call(echo, {"inputs": [x([1, 2.5])], "output_fields": [{"name": "doubled"}, {"name": "calls"}]}))
    assert first["doubled"]["data"] == [2, 5.0] and first["doubled"]["datatype"] == "FP32"
    assert set(first) == {"doubled", "calls"}  # only the requested outputs
    count = first["calls"]["data"][0]
    second = outputs(call(echo, {"inputs": [x([1])], "output_fields": [{"name": "calls"}]}))
    assert second["calls"]["data"] == [count + 1]


def test_str_and_int_inputs(echo: Any) -> None:
    body = {"inputs": [x([1]), {"name": "n", "datatype": "INT32", "data": [[1, 2], [3, 4]], "shape": [2, 2]},
                       {"name": "label", "datatype": "str", "data": ["a", "b"]}]}
    result = outputs(call(echo, body))
    assert result["label"]["data"] == ["A", "B"]


def test_spec_violations_are_422_naming_them(echo: Any) -> None:
    response = call(echo, {"inputs": [{"name": "y", "datatype": "FP32", "data": [1]},
                                      {"name": "label", "datatype": "FP32", "data": [1]}]})
    assert response.status_code == 422
    text = response.text
    assert "unknown input" in text and '"y"' in text          # unknown
    assert '"x"' in text and "missing input" in text          # missing
    assert "the function expects str, got FP32" in text       # wrong datatype
    response = call(echo, {"inputs": [x([1]), {"name": "n", "datatype": "INT32", "data": [1.5]}]})
    assert response.status_code == 422 and "INT32" in response.text and '"n"' in response.text
    response = call(echo, {"inputs": [{"name": "x", "datatype": "FP32", "data": [1, 2, 3], "shape": [2, 2]}]})
    assert response.status_code == 422 and "shape [2, 2] holds 4" in response.text
    response = call(echo, {"inputs": [x([1])], "output_fields": [{"name": "nope"}]})
    assert response.status_code == 422 and "unknown output" in response.text
    response = httpx.post(echo.url + "/inference", content=b"{oops")
    assert response.status_code == 400


def test_file_in_as_multipart_and_out_as_link_and_inline(echo: Any, files: Path) -> None:
    request = '{"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}'
    response = httpx.post(echo.url + "/inference?inline=true", data={"request": request},
                          files={"doc": ("notes.txt", b"hello file", "text/plain")})
    result = outputs(response)
    upper = result["upper"]
    assert upper["datatype"] == "FILE" and upper["content_type"] == "text/plain"
    assert upper["data"].startswith(echo.url + "/files/")
    assert base64.b64decode(upper["base64"]) == b"HELLO FILE"
    download = httpx.get(upper["data"])
    assert download.status_code == 200 and download.content == b"HELLO FILE"
    assert download.headers["content-type"].startswith("text/plain")
    # the function got a path inside the exchange folder, with a generated name
    seen = result["seen"]["data"][0]
    assert str(files.resolve()) in seen and "notes.txt" in seen


def test_file_in_as_base64_json_and_by_reference(echo: Any) -> None:
    doc = {"name": "doc", "datatype": "FILE", "content_type": "text/plain",
           "base64": base64.b64encode(b"abc").decode(), "filename": "a.txt"}
    result = outputs(call(echo, {"inputs": [x([1]), doc]}))
    link = result["upper"]["data"]
    assert httpx.get(link).content == b"ABC"
    # an exchanged file can be sent back by its link (chaining calls)
    again = outputs(call(echo, {"inputs": [x([1]), {"name": "doc", "datatype": "FILE", "data": link}]}))
    assert httpx.get(again["upper"]["data"]).content == b"ABC"


def test_crafted_upload_names_cannot_escape_the_folder(echo: Any, files: Path, tmp_path: Path) -> None:
    exchange = files.resolve()
    for name in ("../../escaped.txt", "..\\..\\escaped.txt", "/tmp/escaped.txt", "....//escaped.txt", ".."):
        response = httpx.post(echo.url + "/inference",
                              data={"request": '{"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}'},
                              files={"doc": (name, b"data", "text/plain")})
        seen = outputs(response)["seen"]["data"][0]
        path = seen.split("'doc', 'FILE', '")[1].split("'")[0]
        assert Path(path).parent == exchange, (name, path)
    assert not (exchange.parent / "escaped.txt").exists()
    assert not (exchange.parent.parent / "escaped.txt").exists()
    # paths in JSON that point outside are refused
    for data in ("../../etc/passwd", "/etc/passwd", str(exchange / ".." / "x.txt")):
        response = call(echo, {"inputs": [x([1]), {"name": "doc", "datatype": "FILE", "data": data}]})
        assert response.status_code == 422, (data, response.text)
        assert "is not a file in the exchange folder" in response.text
    # and downloads by crafted names find nothing
    for name in ("..%2F..%2Fetc%2Fpasswd", "passwd", "%2Fetc%2Fpasswd"):
        assert httpx.get(f"{echo.url}/files/{name}").status_code == 404


def test_output_paths_outside_the_folder_are_refused(serve: Any, functions: Path, tmp_path: Path) -> None:
    server = serve(config(functions, tmp_path / "files", function="escape"))
    response = call(server, {"inputs": []})
    assert response.status_code == 500
    assert "'/etc/hostname' is not a file in the exchange folder" in response.text


def test_a_function_that_raises(serve: Any, functions: Path, tmp_path: Path) -> None:
    server = serve(config(functions, tmp_path / "files", function="raises"))
    assert outputs(call(server, {"inputs": [x([1])]}))["calls"]["data"] == [1]
    response = call(server, {"inputs": [x([1])], "parameters": [["fail", True]]})
    assert response.status_code == 500
    assert "ValueError: x must not be negative (call 2)" in response.text
    # the model object from before the failure is kept
    assert outputs(call(server, {"inputs": [x([1])]}))["calls"]["data"] == [2]
    bad = serve(config(functions, tmp_path / "files2", function="wrong_shape"))
    response = call(bad, {"inputs": []})
    assert response.status_code == 500 and "must return (outputs, model)" in response.text


def test_concurrent_calls_share_one_model_object_safely(serve: Any, functions: Path, tmp_path: Path) -> None:
    server = serve({**config(functions, tmp_path / "files", max_models=1), "max_thread_loop_workers": 8})
    body = {"inputs": [x([1])], "parameters": [["sleep", 0.05]], "output_fields": ["calls", "seen"]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: outputs(call(server, body)), range(16)))
    counts = sorted(r["calls"]["data"][0] for r in results)
    assert counts == list(range(1, 17))  # one model object, every call saw the previous one's
    assert all("max_active=1" in r["seen"]["data"][0] for r in results)


def test_several_model_objects_run_in_parallel(serve: Any, functions: Path, tmp_path: Path) -> None:
    server = serve({**config(functions, tmp_path / "files", max_models=4), "max_thread_loop_workers": 4})
    body = {"inputs": [x([1])], "parameters": [["sleep", 0.3]], "output_fields": ["calls", "seen"]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: outputs(call(server, body)), range(8)))
    assert sum(r["calls"]["data"][0] for r in results) <= sum(range(1, 9))
    info = httpx.get(server.url + "/inference").json()
    assert info["model_objects"] <= 4 and info["calls"] == 8
    assert max(int(r["seen"]["data"][0].rsplit("=", 1)[1]) for r in results) > 1


def test_exchanged_files_expire(serve: Any, functions: Path, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    server = serve(config(functions, folder, file_ttl=1))
    doc = {"name": "doc", "datatype": "FILE", "base64": base64.b64encode(b"soon gone").decode()}
    link = outputs(call(server, {"inputs": [x([1]), doc]}))["upper"]["data"]
    assert httpx.get(link).status_code == 200
    assert any(folder.iterdir())
    time.sleep(2.0)
    assert httpx.get(link).status_code == 404
    deadline = time.monotonic() + 5
    while any(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(folder.iterdir())  # the sweeper removed inputs and outputs


def test_spec_in_get_inference(echo: Any) -> None:
    described = httpx.get(echo.url + "/inference").json()
    spec = described["spec"]
    assert [i["name"] for i in spec["inputs"]] == ["x", "n", "label", "doc"]
    assert spec["inputs"][3] == {"name": "doc", "description": "a text file", "datatype": "FILE",
                                 "content_type": "text/plain", "required": False}
    assert described["model_key"] == "/models/key"


def test_spec_in_info_and_openapi(echo: Any) -> None:
    info = httpx.get(echo.url + "/info").json()
    assert info["mlcomponent"]["spec"]["inputs"][0]["name"] == "x"
    document = httpx.get(echo.url + "/openapi.json").json()
    assert "/inference" in document["paths"]
    assert "InferenceRequest" in document["components"]["schemas"]


def test_the_same_function_through_v2(echo: Any) -> None:
    import core_protocol_v2  # noqa: F401
    import numpy as np
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(echo.address)
    meta = client.get_model_metadata("mlc")
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "x": "FP32", "n": "INT32", "label": "BYTES", "doc": "BYTES"}
    tensors = []
    for name, datatype, value in (("x", "FP32", np.array([1.5, 2], dtype=np.float32)),
                                  ("label", "BYTES", np.array(["hé"], dtype=object)),
                                  ("doc", "BYTES", np.array([b"file body"], dtype=object))):
        tensor = httpclient.InferInput(name, list(value.shape), datatype)
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    result = client.infer("mlc", tensors, outputs=[httpclient.InferRequestedOutput(n) for n in
                                                   ("doubled", "label", "upper")])
    np.testing.assert_array_equal(result.as_numpy("doubled"), [3, 4])
    assert result.as_numpy("label").tolist() == ["HÉ".encode()]
    assert result.as_numpy("upper").tolist() == [b"FILE BODY"]
    with pytest.raises(Exception) as caught:
        client.infer("mlc", tensors[1:])  # x is missing
    assert "missing input" in str(caught.value)


def test_manifest_serve(serve: Any, functions: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(textwrap.dedent(f"""
        kind: MLComponent
        metadata: {{name: from-manifest}}
        spec:
          image: {{resourceLimits: {{cpu: "2"}}}}
          env: [{{name: MLC_TEST_FLAG, value: "on"}}]
          mlService:
            inference:
              fileExchange: {{inferenceFilesPath: exchange}}
              model: {{modelPath: model.bin}}
              entryPoint: {{pythonPath: {functions}, pythonFunction: mlc_test_functions.echo}}
    """))
    server = serve(None, command=[sys.executable, "-m", "core.cli", "serve", "--manifest", str(manifest),
                                  "--host", "127.0.0.1", "--port", "{port}"])
    assert httpx.get(server.url + "/health").json()["model"] == "from-manifest"
    described = httpx.get(server.url + "/inference").json()
    assert described["model_key"] == str(tmp_path / "model.bin")
    assert described["files_path"] == str(tmp_path / "exchange")
    assert described["max_models"] == 2
    assert outputs(call(server, {"inputs": [x([2])]}))["doubled"]["data"] == [4]


def test_the_shipped_example(serve: Any) -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "mlcomponent"
    if not (example / "manifest.yaml").is_file():
        pytest.skip("the repository's examples/ are not here")
    server = serve(None, command=[sys.executable, "-m", "core.cli", "serve", "--manifest",
                                  str(example / "manifest.yaml"), "--host", "127.0.0.1", "--port", "{port}"])
    body = {"inputs": [{"name": "features", "datatype": "FP32", "data": [54, 2, 30], "shape": [1, 3]}],
            "parameters": [["round", 0]]}
    assert outputs(call(server, body))["prices"]["data"] == [181.0]
    with (example / "data" / "houses.csv").open("rb") as file:
        response = httpx.post(server.url + "/inference", files={"table": ("houses.csv", file, "text/csv")})
    csv_text = httpx.get(outputs(response)["table_prices"]["data"]).text
    assert csv_text.splitlines()[0] == "area,rooms,age,price" and len(csv_text.splitlines()) == 4
