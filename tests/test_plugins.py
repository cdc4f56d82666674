"""The plugin manager with real plugin distributions, installed into a throw-away folder
(``pip install --target``) that only the child processes see: nothing leaks into the venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from serving import object_config

import core
from core import hookspecs
from core.errors import ConfigError, PluginError
from core.plugins import load_plugins

ROOT = Path(__file__).parent.parent


def install_plugin(tmp_path: Path, dist: str, entry: str, code: str) -> Path:
    """Build and pip-install a one-module plugin distribution into ``tmp_path/site``."""
    module = dist.replace("-", "_")
    project = tmp_path / dist
    project.mkdir()
    (project / f"{module}.py").write_text(textwrap.dedent(code))
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "{dist}"
        version = "1.2.3"
        [project.entry-points.core]
        {entry} = "{module}"
        [tool.hatch.build.targets.wheel]
        include = ["{module}.py"]
    """))
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(project)],
        check=True, capture_output=True,
    )
    return site


def run_core(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", *args], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(site), **(env or {})},
    )


ZIP_LIKE_STORAGE = """
    import attrs, core

    @attrs.define(kw_only=True)
    class ConstantStorage(core.Storage):
        '''Serves a model that multiplies rows by `factor`.'''
        factor: float = 2.0

        def load(self):
            factor = self.factor
            class Model:
                def predict(self, X):
                    return [[v * factor for v in row] for row in X]
            return [core.LoadedFile(obj=Model(), name="constant")]

    @core.hookimpl
    def register_storages(register):
        register("constant", ConstantStorage)
"""


def test_third_party_storage_plugin_is_found_by_the_server(tmp_path, serve):
    site = install_plugin(tmp_path, "core-storage-constant", "constant", ZIP_LIKE_STORAGE)
    listing = run_core(site, "plugins", "--json")
    assert listing.returncode == 0, listing.stderr
    plugin = next(p for p in json.loads(listing.stdout) if p["name"] == "constant")
    assert plugin["distribution"] == "core-storage-constant"
    assert plugin["version"] == "1.2.3"
    assert plugin["provides"] == {"storage": ["constant"]}

    server = serve({"storage_type": "constant", "storage_kwargs": {"factor": 3.0}},
                   pythonpath=[str(site)])
    r = httpx.post(f"{server.url}/predict", json={"X": [[1, 2]]})
    assert r.json() == {"predict_result": [[3.0, 6.0]]}
    info = httpx.get(f"{server.url}/info").json()
    assert {"name": "constant", "distribution": "core-storage-constant"}.items() <= next(
        p for p in info["plugins"] if p["name"] == "constant").items()


REQUEST_PATH_WRAPPERS = """
    import core

    @core.hookimpl(wrapper=True)
    def transformer_to_model(transformer, data, argument):
        value = yield
        return value * 10  # the numpy array of the rows

    @core.hookimpl(wrapper=True)
    def transformer_from_model(transformer, data):
        value = yield
        return {"wrapped": value}

    @core.hookimpl(wrapper=True)
    def architecture_predict(architecture, data, predict_id):
        pending = yield

        async def tagged():
            return {**(await pending), "predict_id": predict_id}

        return tagged()
"""


def test_plugins_wrapping_the_request_path_hooks_are_called(tmp_path, serve):
    # core calls components directly while only core.builtin implements these hooks; an
    # installed plugin that implements them must still see every request.
    site = install_plugin(tmp_path, "core-wrappers", "wrappers", REQUEST_PATH_WRAPPERS)
    server = serve(object_config("models:sum_model"),
                   pythonpath=[str(site), str(Path(__file__).parent / "support")])
    with httpx.Client(base_url=server.url) as client:
        for _ in range(10):  # also once the quick model runs on the event loop
            r = client.post("/predict", json={"X": [[1, 2]]})
            assert r.json()["predict_result"] == {
                "wrapped": [30.0], "predict_id": r.headers["X-Predict-Id"]
            }


def test_two_plugins_claiming_one_name_are_named(tmp_path):
    site = install_plugin(tmp_path, "core-first", "first", ZIP_LIKE_STORAGE)
    install_plugin(tmp_path, "core-second", "second", ZIP_LIKE_STORAGE)
    result = run_core(site, "plugins")
    assert result.returncode == 1
    assert "two plugins claim the storage name 'constant'" in result.stderr
    assert "core-first" in result.stderr and "core-second" in result.stderr
    limited = run_core(site, "plugins", env={"CORE_LOAD_PLUGINS": "first"})
    assert limited.returncode == 0, limited.stderr
    assert "first" in limited.stdout and "second" not in limited.stdout


def test_a_plugin_that_fails_to_import_is_named_with_its_traceback(tmp_path):
    site = install_plugin(tmp_path, "core-broken", "broken", "import definitely_not_a_module\n")
    result = run_core(site, "plugins")
    assert result.returncode == 1
    assert "plugin 'broken' (distribution core-broken 1.2.3) failed to import" in result.stderr
    assert "Traceback" in result.stderr and "definitely_not_a_module" in result.stderr
    assert run_core(site, "plugins", env={"CORE_LOAD_PLUGINS": ""}).returncode == 0


def test_misspelt_hook_fails_at_start_up():
    class Plugin:
        @core.hookimpl
        def register_storage(self, register):  # missing "s"
            pass

    with pytest.raises(PluginError, match="unknown hook"):
        load_plugins([Plugin()], entry_points=False)


def test_registration_checks_the_base_class():
    class Plugin:
        @core.hookimpl
        def register_binarizers(self, register):
            register("bad", dict)

    with pytest.raises(PluginError, match="not a subclass of core.Binarizer"):
        load_plugins([Plugin()], entry_points=False)


def test_unknown_names_list_the_installed_ones():
    plugins = load_plugins(entry_points=False)
    with pytest.raises(ConfigError, match="unknown transformer 'pandas'.*installed: numpy, passthrough"):
        plugins.transformers.get("pandas")
    with pytest.raises(ConfigError, match="unknown storage 'remote'.*; pip install core-storage-remote;"):
        plugins.storages.get("remote")
    with pytest.raises(ConfigError, match="cannot import module 'nope'"):
        plugins.storages.get("nope.Storage")
    with pytest.raises(ConfigError, match="not a subclass of core.Storage"):
        plugins.storages.get("core.config.Config")
    assert plugins.transformers.get(
        "mlup.ml.data_transformers.numpy_data_transformer.NumpyDataTransformer").__name__ == "NumpyTransformer"


def test_every_hook_is_documented():
    """Each hookspec has a docstring and a section in the plugin author's guide."""
    guide = (ROOT / "docs" / "plugins.md").read_text()
    names = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "core_spec")]
    assert len(names) >= 9
    for name in names:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"
        assert f"`{name}" in guide, f"hook {name} is not in docs/plugins.md"


CATCH_ALL_PLUGIN = """
    import core
    from starlette.responses import JSONResponse
    from starlette.routing import Route


    async def not_here(request):
        return JSONResponse({"error": "no such path under /x"}, status_code=404)


    @core.hookimpl
    def register_routes(service):
        async def hello(admission):
            return {"hello": admission.request.path_params["name"]}

        # the catch-all first: Starlette alone would answer every /x/... path with it
        return [Route("/x/{path:path}", not_here),
                service.gate.route("/x/hello/{name}", hello, methods=["GET"], predicts=False)]
"""


def test_a_catch_all_route_answers_only_what_no_other_route_does(tmp_path, serve):
    """A plugin's fallback (the V2 protocol's 404 under /v2 is one) is tried after every other
    route, whatever the order the plugins return them in."""
    site = install_plugin(tmp_path, "core-catch-all", "catch-all", CATCH_ALL_PLUGIN)
    server = serve(object_config("models:sum_model"),
                   pythonpath=[str(site), str(Path(__file__).parent / "support")])
    answer = httpx.get(f"{server.url}/x/hello/world")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"hello": "world"}
    assert "x-predict-id" in answer.headers  # through the gate
    missing = httpx.get(f"{server.url}/x/nothing/here")
    assert (missing.status_code, missing.json()) == (404, {"error": "no such path under /x"})
    assert httpx.post(f"{server.url}/predict", json={"X": [[1, 2]]}).status_code == 200
