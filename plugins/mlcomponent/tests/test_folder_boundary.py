"""The exchange folder's boundary on every path a request can take: ``POST /inference``,
``POST /predict`` (calls that do not say their datatype included), V2 ``infer`` and
``GET /files/{name}``; symlinks planted in the folder; one request's outputs against another's.

The served function trusts its specification as a real one does: it opens whatever path its
``FILE`` input carries and writes wherever its ``FILE`` output field points."""

from __future__ import annotations

import base64
import json
import os
import textwrap
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

FUNCTIONS = '''
from pathlib import Path


def copy(parameters, inputs, output_fields, model_key, model=None):
    """Read a text file; give its text and an upper-cased copy.

    :param inputs.table: a text file
    :type inputs.table: FILE text/plain
    :param outputs.text: the file's text
    :type outputs.text: str
    :param outputs.result: the file, upper-cased
    :type outputs.result: FILE text/plain
    """
    source = {i["name"]: i for i in inputs}["table"]["data"]
    text = Path(source).read_text()
    out = [{"name": "text", "datatype": "str", "data": [text], "shape": [1]}]
    for field in output_fields:
        if field["name"] == "result" and field.get("data"):
            Path(field["data"]).write_text(text.upper())
            out.append({"name": "result", "datatype": "FILE", "data": field["data"], "shape": [1]})
    return out, model


def give(parameters, inputs, output_fields, model_key, model=None):
    """Return the path in the parameter ``path`` as a FILE output (without writing it)."""
    return [{"name": "given", "datatype": "FILE", "data": dict(parameters)["path"], "shape": [1]}], model
'''

SECRET = "top secret"


@pytest.fixture(scope="module")
def functions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("functions")
    (folder / "mlc_boundary_functions.py").write_text(textwrap.dedent(FUNCTIONS))
    return folder


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder next to the exchange folder, holding a secret."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret.txt").write_text(SECRET)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exchange folder, with a file the platform put there (``in.txt``)."""
    folder = tmp_path_factory.mktemp("boundary") / "files"
    folder.mkdir()
    (folder / "in.txt").write_text("platform file")
    return folder.resolve()


def config(functions: Path, files: Path, function: str) -> dict[str, Any]:
    return {
        "name": "mlc",
        "storage_type": "mlcomponent",
        "storage_kwargs": {"python_function": f"mlc_boundary_functions.{function}",
                           "python_path": str(functions), "files_path": str(files)},
        "data_transformer_for_predict": "passthrough",
    }


@pytest.fixture(scope="module")
def copy(serve: Any, functions: Path, files: Path) -> Any:
    return serve(config(functions, files, "copy"))


@pytest.fixture(scope="module")
def give(serve: Any, functions: Path, files: Path) -> Any:
    return serve(config(functions, files, "give"))


def inference(server: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/inference", json=body, timeout=30)


def predict(server: Any, call: dict[str, Any]) -> dict[str, Any]:
    """``POST /predict`` with one call; its answer."""
    call = {"parameters": [], "output_fields": [], **call}
    response = httpx.post(server.url + "/predict", json={"requests": [call]}, timeout=30)
    assert response.status_code == 200, response.text
    [answer] = response.json()["predict_result"]
    assert isinstance(answer, dict)
    return answer


def refused(answer: dict[str, Any], *loc: str | int) -> str:
    """A /predict answer that is a 422 naming ``loc``; its message."""
    assert "outputs" not in answer, answer
    assert answer.get("status") == 422, answer
    assert any(d["loc"][-len(loc):] == list(loc) for d in answer["detail"]), answer
    return str(answer["error"])


def base64_table(text: str) -> dict[str, Any]:
    return {"name": "table", "datatype": "FILE", "filename": "t.txt",
            "base64": base64.b64encode(text.encode()).decode()}


def platform_table(files: Path) -> dict[str, Any]:
    """The file the platform put in the exchange folder, as a FILE input."""
    return {"name": "table", "datatype": "FILE", "data": str(files / "in.txt")}


def generated_name(hint: str = "") -> str:
    """A name of the form the server generates (and, before, served whatever it pointed at)."""
    return uuid.uuid4().hex + (f"-{hint}" if hint else "")


# ---------------------------------------------------------------------- reading outside


def test_predict_input_without_datatype_cannot_read_outside(copy: Any, files: Path, outside: Path) -> None:
    secret = outside / "secret.txt"
    for item in ({"name": "table", "data": str(secret)},               # datatype left off
                 {"name": "table", "data": [str(secret)]},
                 {"name": "table", "data": os.path.relpath(secret, files)},
                 {"name": "table", "datatype": "FILE", "data": str(secret)},
                 {"name": "table", "datatype": "FILE", "data": str(files / ".." / ".." / secret.parent.name
                                                                   / "secret.txt")}):
        answer = predict(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
        assert SECRET not in json.dumps(answer), item
        assert "not a file in the exchange folder" in refused(answer, "inputs", "table", "data"), answer
    # a file inside the folder, named with or without its datatype, is read
    for item in ({"name": "table", "data": "in.txt"}, {"name": "table", "datatype": "FILE", "data": str(files / "in.txt")}):
        answer = predict(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
        assert answer["outputs"][0]["data"] == ["platform file"], answer


def test_a_str_value_that_looks_like_a_path_is_data(copy: Any, outside: Path) -> None:
    """Declared FILE, sent as str: refused, never opened; the server only opens FILE values."""
    secret = str(outside / "secret.txt")
    item = {"name": "table", "datatype": "str", "data": secret}
    answer = predict(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
    assert SECRET not in json.dumps(answer)
    assert "the function expects FILE, got str" in refused(answer, "inputs", "table", "datatype")
    response = inference(copy, {"inputs": [item]})
    assert response.status_code == 422 and "the function expects FILE, got str" in response.text


# ---------------------------------------------------------------------- writing outside


def test_predict_output_fields_cannot_write_outside(copy: Any, files: Path, outside: Path) -> None:
    for index, field in enumerate((
        {"name": "result", "data": str(outside / "written0.txt")},               # datatype left off
        {"name": "result", "datatype": "FILE", "data": str(outside / "written1.txt")},
        {"name": "result", "data": os.path.relpath(outside / "written2.txt", files)},
        {"name": "text", "data": str(outside / "written3.txt")},                 # a str output
    )):
        answer = predict(copy, {"inputs": [platform_table(files)], "output_fields": [field]})
        assert not (outside / f"written{index}.txt").exists()
        message = refused(answer, "output_fields", field["name"], "data")
        assert "the server chooses where outputs are written" in message, answer
    # without a path, the server gives one in the folder, and the result is a generated name
    answer = predict(copy, {"inputs": [base64_table("abc")], "output_fields": [{"name": "result"}]})
    [result] = answer["outputs"]
    assert (files / result["data"]).read_text() == "ABC"
    assert httpx.get(f"{copy.url}/files/{result['data']}").text == "ABC"
    [result] = predict(copy, {"inputs": [platform_table(files)], "output_fields": [{"name": "result"}]})["outputs"]
    assert (files / result["data"]).read_text() == "PLATFORM FILE"


def test_inference_datatype_left_off_on_input_and_output_fields(copy: Any, files: Path, outside: Path) -> None:
    for field in ({"name": "result", "data": str(outside / "w.txt")},             # datatype left off
                  {"name": "result", "datatype": "FILE", "data": str(outside / "w.txt")},
                  {"name": "text", "data": str(outside / "w.txt")}):
        response = inference(copy, {"inputs": [base64_table("abc")], "output_fields": [field]})
        assert response.status_code == 422, response.text
        assert "the server chooses where outputs are written" in response.text
        assert response.json()["detail"][0]["loc"] == ["body", "output_fields", field["name"], "data"]
    assert not (outside / "w.txt").exists()
    # an empty data, as the seed's examples carry, is fine
    response = inference(copy, {"inputs": [base64_table("abc")], "output_fields": [{"name": "result", "data": []}]})
    assert response.status_code == 200, response.text
    # inputs: the docstring's datatype applies when the request gives none
    secret = outside / "secret.txt"
    for data in (str(secret), os.path.relpath(secret, files), [str(secret)]):
        response = inference(copy, {"inputs": [{"name": "table", "data": data}]})
        assert response.status_code == 422, response.text
        assert SECRET not in response.text
        assert "not a file in the exchange folder" in response.text
        assert response.json()["detail"][0]["loc"] == ["body", "inputs", "table", "data"]


def test_a_request_cannot_overwrite_another_requests_output(copy: Any, files: Path) -> None:
    first = inference(copy, {"inputs": [base64_table("first")], "output_fields": ["result"]})
    assert first.status_code == 200, first.text
    link = first.json()["outputs"][0]["data"]
    name = link.rsplit("/", 1)[1]
    for data in (str(files / name), name, link):
        for field in ({"name": "result", "data": data}, {"name": "result", "datatype": "FILE", "data": data}):
            answer = predict(copy, {"inputs": [platform_table(files)], "output_fields": [field]})
            assert httpx.get(link).text == "FIRST", field
            refused(answer, "output_fields", "result", "data")
            response = inference(copy, {"inputs": [base64_table("second")], "output_fields": [field]})
            assert response.status_code == 422, response.text
    assert httpx.get(link).text == "FIRST"
    # two requests' outputs never share a name
    names = {predict(copy, {"inputs": [base64_table("x")], "output_fields": [{"name": "result"}]})["outputs"][0]["data"]
             for _ in range(3)}
    assert len(names) == 3 and name not in names


# ---------------------------------------------------------------------- planted symlinks


def test_a_planted_file_symlink_is_not_served_or_followed(copy: Any, give: Any, files: Path,
                                                          outside: Path) -> None:
    to_outside = generated_name("planted.txt")
    to_inside = generated_name("alias.txt")
    (files / to_outside).symlink_to(outside / "secret.txt")
    (files / to_inside).symlink_to(files / "in.txt")
    for name in (to_outside, to_inside):
        response = httpx.get(f"{copy.url}/files/{name}")
        assert response.status_code == 404, (name, response.text)
        assert SECRET not in response.text and "platform file" not in response.text
        for item in ({"name": "table", "data": name}, {"name": "table", "datatype": "FILE", "data": name}):
            answer = predict(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
            assert "not a file in the exchange folder" in refused(answer, "inputs", "table", "data")
            response = inference(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
            assert response.status_code == 422 and "not a file in the exchange folder" in response.text
        # a function that returns the symlink as its output: refused, nothing moved
        response = inference(give, {"parameters": [["path", str(files / name)]]})
        assert response.status_code == 500 and "not a file in the exchange folder" in response.text
        assert (files / name).is_symlink()
    assert (files / "in.txt").read_text() == "platform file"


def test_a_planted_directory_symlink_is_not_followed(copy: Any, give: Any, files: Path, outside: Path) -> None:
    to_outside = generated_name()
    to_itself = "inner"
    (files / to_outside).symlink_to(outside, target_is_directory=True)
    (files / to_itself).symlink_to(files, target_is_directory=True)
    assert httpx.get(f"{copy.url}/files/{to_outside}").status_code == 404
    for reference in (f"{to_outside}/secret.txt", str(files / to_outside / "secret.txt"), f"{to_itself}/in.txt"):
        for item in ({"name": "table", "data": reference}, {"name": "table", "datatype": "FILE", "data": reference}):
            answer = predict(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
            assert SECRET not in json.dumps(answer) and "platform file" not in json.dumps(answer)
            assert "not a file in the exchange folder" in refused(answer, "inputs", "table", "data")
            response = inference(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
            assert response.status_code == 422 and "not a file in the exchange folder" in response.text
        response = inference(give, {"parameters": [["path", str(files / reference)]]})
        assert response.status_code == 500 and "not a file in the exchange folder" in response.text
    answer = predict(copy, {"inputs": [platform_table(files)],
                            "output_fields": [{"name": "result", "data": f"{to_outside}/written.txt"}]})
    assert not (outside / "written.txt").exists()
    refused(answer, "output_fields", "result", "data")
    assert (files / "in.txt").read_text() == "platform file"


# ---------------------------------------------------------------------- what refusals tell


def test_refusals_read_the_same_whether_an_outside_path_exists(copy: Any, give: Any, files: Path,
                                                              outside: Path) -> None:
    link = generated_name()
    (files / link).symlink_to(outside, target_is_directory=True)
    pairs = [
        (str(outside / "secret.txt"), str(outside / "missing.txt")),
        (os.path.relpath(outside / "secret.txt", files), os.path.relpath(outside / "missing.txt", files)),
        (f"{link}/secret.txt", f"{link}/missing.txt"),
        ("/etc/hostname", "/etc/no-such-file"),
    ]

    def answers(path: str) -> list[str]:
        texts = []
        for item in ({"name": "table", "data": path}, {"name": "table", "datatype": "FILE", "data": path}):
            answer = predict(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
            texts.append(json.dumps(answer, sort_keys=True))
            response = inference(copy, {"inputs": [item], "output_fields": [{"name": "text"}]})
            texts.append(f"{response.status_code} {json.dumps(response.json()['detail'], sort_keys=True)}")
        response = inference(give, {"parameters": [["path", path]]})
        texts.append(f"{response.status_code} {json.dumps(response.json()['detail'], sort_keys=True)}")
        return [text.replace(json.dumps(path)[1:-1], "<path>") for text in texts]

    for existing, missing in pairs:
        assert answers(existing) == answers(missing), (existing, missing)


# ---------------------------------------------------------------------- V2


def test_v2_bytes_for_a_file_input_are_its_content_never_a_path(copy: Any, outside: Path) -> None:
    secret = str(outside / "secret.txt")
    body = {"inputs": [{"name": "table", "datatype": "BYTES", "shape": [1], "data": [secret]}],
            "outputs": [{"name": "text"}, {"name": "result"}]}
    response = httpx.post(f"{copy.url}/v2/models/mlc/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["text"]["data"] == [secret]          # the function read a file holding the path text
    assert outputs["result"]["data"] == [secret.upper()]
