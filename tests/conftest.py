"""Shared fixtures of the project's own tests."""

pytest_plugins = ["pytester"]


# -- engine and driver fixtures (generic; append others below) -------------------------------------

import pytest  # noqa: E402

#: Set on a test that skipped because a live engine (Docker, Podman) is not there: ``-ra`` shows
#: all of them as one line per file, "SKIPPED [48] tests/test_engine_fake.py: podman: ...",
#: instead of one line per test.
ENGINE_UNAVAILABLE = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    reason = item.stash.get(ENGINE_UNAVAILABLE, None)
    if reason is not None and report.skipped and isinstance(report.longrepr, tuple):
        path, _, message = report.longrepr
        report.longrepr = (path, None, message)  # no line: the skips fold by file and reason


@pytest.fixture
def fake_engine():
    """A fresh in-memory engine with Docker semantics."""
    from pytest_sandbox_conformance.engines.fake import FakeEngine

    with FakeEngine() as engine:
        yield engine


@pytest.fixture
def driver_factory(fake_engine, tmp_path):
    """Make a ``ReferenceDriver`` over ``fake_engine`` and one state folder under ``tmp_path``.

    Each call builds a new driver object; a second call over the same engine and folder is a
    simulated process restart. ``engine=`` and ``state_dir=`` override the defaults.
    """
    from reference_driver import ReferenceDriver

    def make(engine=None, state_dir=None, **kwargs):
        return ReferenceDriver(fake_engine if engine is None else engine,
                               tmp_path / "journal" if state_dir is None else state_dir, **kwargs)

    return make


# -- inner suite runs (tests/test_plugin.py, tests/test_broken_drivers.py) -------------------------


@pytest.fixture
def sandbox_state_dir(tmp_path):
    """A folder for ``--sandbox-state-dir`` in inner runs of the suite.

    Every journal write fsyncs; on a disk that dominates an inner run's time, so the folder is on
    tmpfs (``/dev/shm``) where there is one, else under ``tmp_path``.
    """
    import os
    import shutil
    import tempfile
    from pathlib import Path

    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="sbx-tests-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        folder = tmp_path / "sandbox-state"
        folder.mkdir()
        yield folder
