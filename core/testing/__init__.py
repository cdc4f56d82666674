"""Contract test suites for plugin authors: subclass one, provide fixtures, get the checks.

Every storage and binarizer ``core`` ships is tested with these suites, and a third-party
plugin gets the same checks by subclassing them in its own tests (the way hydra's launcher
plugins subclass ``LauncherTestSuite``). They need ``pytest``::

    # tests/test_zip_storage.py of a plugin distribution "core-storage-zip"
    import pytest
    from core.testing import StorageContract

    from core_storage_zip import ZipStorage


    class TestZipStorage(StorageContract):
        name = "zip"  # the name the plugin registers; checked through the entry point

        @pytest.fixture
        def storage(self, tmp_path):
            archive = make_archive(tmp_path)  # whatever makes a real file for the test
            return ZipStorage(path=str(archive))

        # ... plus the plugin's own tests

``pytest`` collects ``TestZipStorage`` and runs every ``test_*`` method of the suite on it.
The suite classes themselves are not collected (their names do not start with ``Test``).

What the suites check:

* the component subclasses the right :mod:`core.components` contract;
* it is registered under :attr:`name` by the installed distribution's entry point
  (so run the tests with the plugin installed: ``pip install -e .``);
* an unknown setting is refused by the constructor, and ``core`` reports it as one
  :class:`~core.errors.ConfigError` line that names the setting (use ``attrs.define`` or a
  dataclass and this comes for free);
* a storage's ``load()`` returns :class:`~core.components.LoadedFile` objects that each
  carry a path, bytes or an object, and its ``check()`` passes for a working storage;
* a result store marks ids pending, keeps each answer once (a second ``put`` is refused),
  lets it expire after its ttl, and shows it to a store built alike in another process;
* a binarizer's ``deserialize()`` returns an object with a predict method, ``detect()``
  answers ``(score, reason)`` without raising and recognises its own file, and reading a
  file from its path and from its bytes gives the same model.

To skip a check that does not apply, override the test method in the subclass with one
that calls ``pytest.skip("why")``.

For end-to-end tests, :class:`Server` runs a real ``hypercorn core.app:app`` on a free port of
127.0.0.1 the way a user starts it (``CORE_CONFIG`` naming a config file), and
:func:`server_fixture` makes a pytest fixture that starts them and stops them all at the end::

    # conftest.py
    from core.testing import server_fixture

    serve = server_fixture(scope="module")

    # test_served.py
    import httpx

    def test_predict(serve):
        server = serve({"storage_type": "zip", "storage_kwargs": {"archive": "..."}})
        assert httpx.post(f"{server.url}/predict", json={"X": [[1, 2]]}).status_code == 200
"""

from core.testing.contracts import (
    ArchitectureContract,
    BinarizerContract,
    ContractModel,
    ContractStorage,
    ResultStoreContract,
    StorageContract,
    constructor_kwargs,
)
from core.testing.server import Server, Servers, free_port, server_fixture

__all__ = [
    "ArchitectureContract",
    "BinarizerContract",
    "ContractModel",
    "ContractStorage",
    "ResultStoreContract",
    "Server",
    "Servers",
    "StorageContract",
    "constructor_kwargs",
    "free_port",
    "server_fixture",
]
