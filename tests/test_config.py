"""Config: types, unknown keys, files, sections and environment overrides."""

from __future__ import annotations

import json
import re

import pytest

import core.plugins
from core import Config
from core.config import env_overrides
from core.constants import StorageType
from core.errors import ConfigError, PluginError
from core.hookspecs import hookimpl
from core.plugins import load_plugins


def test_defaults_follow_pymlup():
    conf = Config()
    assert conf.storage_type == "memory"
    assert conf.binarization_type == "auto"
    assert conf.predict_method_name == "predict"
    assert conf.port == 8009


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"port": "80"}, "'port' must be int"),
        ({"port": True}, "'port' must be int"),
        ({"storage_kwargs": []}, "'storage_kwargs' must be dict"),
        ({"throttling_max_requests": 0}, "greater than 0"),
        ({"columns": [{"name": "a", "type": "complex"}]}, "unknown type 'complex'"),
        ({"columns": [{"type": "int"}]}, "needs a 'name'"),
        ({"columns": [{"name": "age", "type": "int", "default": 0.5}]},
         r"columns\[0\] \(age\): 'default' must be int, got float 0.5"),
        ({"columns": [{"name": "n", "type": "float", "default": True}]}, "'default' must be float, got bool"),
    ],
)
def test_wrong_types_name_the_key(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Config(**kwargs)


def test_assignment_is_checked_too():
    conf = Config()
    conf.port = 8011
    with pytest.raises(ConfigError, match="'port' must be int"):
        conf.port = "8011"


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="unknown config key 'storage_kwarg'; did you mean 'storage_kwargs'"):
        Config.from_dict({"storage_kwarg": {}})


def test_pymlup_sections_and_enums(tmp_path):
    data = {"version": "1", "ml": {"storage_type": StorageType.disk, "version": "2.0"},
            "web": {"port": 8011, "mode": "directly_to_predict"}}
    conf = Config.from_dict(data)
    assert (conf.storage_type, conf.version, conf.port) == ("disk", "2.0", 8011)


def test_legacy_keys_are_logged_not_silently_dropped(caplog):
    Config.from_dict({"type": "sklearn"})
    assert "key 'type' is not used by core" in caplog.text


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_round_trip_through_files(tmp_path, suffix):
    conf = Config(name="m", storage_type="disk", storage_kwargs={"path_to_files": "/m.pkl"},
                  columns=[{"name": "a", "type": "int"}])
    path = tmp_path / f"c{suffix}"
    if suffix == ".toml":
        conf.to_toml(path)
    elif suffix == ".json":
        conf.to_json(path)
    else:
        import yaml

        path.write_text(yaml.safe_dump(conf.to_dict()))
    assert Config.from_file(path) == conf


def test_bad_files_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        Config.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_file(bad)
    (tmp_path / "c.ini").write_text("")
    with pytest.raises(ConfigError, match="unknown config format"):
        Config.from_file(tmp_path / "c.ini")


def test_environment_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"name": "file", "port": 1}))
    conf = Config.from_env({"CORE_CONFIG": str(path), "CORE_PORT": "8010", "CORE_DEBUG": "true",
                            "CORE_STORAGE_KWARGS": '{"path_to_files": "/x"}',
                            "CORE_DTYPE_FOR_PREDICT": "float32"})
    assert (conf.name, conf.port, conf.debug) == ("file", 8010, True)
    assert conf.storage_kwargs == {"path_to_files": "/x"}
    assert conf.dtype_for_predict == "float32"
    with pytest.raises(ConfigError, match="CORE_PROT.*did you mean 'port'"):
        env_overrides({"CORE_PROT": "1"})
    with pytest.raises(ConfigError, match="^environment variable CORE_PORT: config key 'port' must be int"):
        Config.from_env({"CORE_PORT": "eighty"})


def test_reserved_core_variables_are_not_config_keys():
    # the config file, the plugins to load, and the model cache of the storages that download
    assert env_overrides({"CORE_CONFIG": "c.toml", "CORE_LOAD_PLUGINS": "disk",
                          "CORE_CACHE_DIR": "/var/cache/models", "CORE_PORT": "8010"}) == {"port": 8010}


def test_kubernetes_service_links_are_not_config_keys(caplog):
    """A pod gets these for Services named ``core`` and ``core-metrics`` in its namespace
    (unless ``enableServiceLinks: false``); core must still start, on its own port."""
    links = {
        "CORE_SERVICE_HOST": "10.0.0.7", "CORE_SERVICE_PORT": "8009", "CORE_SERVICE_PORT_HTTP": "8009",
        "CORE_PORT": "tcp://10.0.0.7:8009", "CORE_PORT_8009_TCP": "tcp://10.0.0.7:8009",
        "CORE_PORT_8009_TCP_PROTO": "tcp", "CORE_PORT_8009_TCP_PORT": "8009",
        "CORE_PORT_8009_TCP_ADDR": "10.0.0.7",
        "CORE_METRICS_SERVICE_HOST": "10.0.0.8", "CORE_METRICS_PORT": "tcp://10.0.0.8:9090",
        "CORE_METRICS_PORT_9090_TCP": "tcp://10.0.0.8:9090",
    }
    with caplog.at_level("WARNING", logger="core"):
        conf = Config.from_env({**links, "CORE_NAME": "m"})
    assert (conf.name, conf.port, conf.metrics_port) == ("m", 8009, None)
    said = caplog.text
    assert "ignoring CORE_PORT=tcp://10.0.0.7:8009: a Kubernetes service link (a Service named core)" in said
    assert "CORE_METRICS_PORT=tcp://10.0.0.8:9090" in said and "enableServiceLinks: false" in said
    # a real setting and a real mistake are still read as before
    assert env_overrides({**links, "CORE_PORT": "8010"}) == {"port": 8010}
    with pytest.raises(ConfigError, match="CORE_SERVICE_HOSTS"):
        env_overrides({"CORE_SERVICE_HOSTS": "x"})
    with pytest.raises(ConfigError, match="config key 'port' must be int"):
        Config.from_env({"CORE_PORT": "http://10.0.0.7:8009"})


def test_with_env_puts_the_environment_over_a_config():
    conf = Config(name="file", port=1).with_env({"CORE_PORT": "8010", "CORE_CONFIG": "ignored.toml"})
    assert (conf.name, conf.port) == ("file", 8010)
    assert Config(port=1).with_env({}) == Config(port=1)
    with pytest.raises(ConfigError, match="^environment variable CORE_MAX_BATCH_WAIT: .* 0 or more"):
        Config().with_env({"CORE_MAX_BATCH_WAIT": "-1"})


class _Claims:
    """A plugin registered in code that reads the ``[mine]`` table of a config file."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)

    @hookimpl
    def register_config_sections(self):
        return self.names


def test_a_table_a_plugin_claims_is_left_out_of_the_config(monkeypatch, tmp_path):
    monkeypatch.setattr(core.plugins, "_default", load_plugins([_Claims("mine")], entry_points=False))
    path = tmp_path / "c.toml"
    path.write_text('name = "iris"\n[mine]\nreplicas = 2\n')
    conf = Config.from_file(path)
    assert conf.name == "iris" and "mine" not in conf.to_flat_dict()
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"name": "iris", "mine": 3})
    assert str(caught.value) == "config: 'mine' must be a table (a mapping of keys to values), got int"
    with pytest.raises(ConfigError, match="unknown config key 'yours'"):  # only what is claimed
        Config.from_dict({"name": "iris", "yours": {"a": 1}})


def test_a_table_of_a_plugin_not_installed_names_it(monkeypatch):
    monkeypatch.setattr(core.plugins, "_default", load_plugins(entry_points=False))
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"name": "iris", "ray": {"num_replicas": 2}})
    assert str(caught.value) == ("config: the config table 'ray' is read by core-serve-ray, which is "
                                 "not installed: pip install core-serve-ray")


@pytest.mark.parametrize("claims, fragment", [
    ([_Claims("mine"), _Claims("mine")], "claims the config table 'mine', which plugin"),
    ([_Claims("name")], "claims the config table 'name', which core (a config key) already has"),
])
def test_a_table_claimed_twice_is_an_error_naming_both(monkeypatch, claims, fragment):
    monkeypatch.setattr(core.plugins, "_default", load_plugins(claims, entry_points=False))
    with pytest.raises(PluginError, match=re.escape(fragment)):
        Config.from_dict({"name": "iris", "other": {}})
