"""The conformance suite of one pytest session: a plugin object registered by ``pytest_configure``
when the suite is on. It checks the driver's adapter (``adapters/validate.py``), opens the engine,
collects the scenario files, runs items through the runner (each item plays in its setup phase,
so an engine outage or a refused story step is an *error* of the item, and is judged in its call
phase: see ``items.py``), stops the session once the engine has not answered for
``--sandbox-engine-timeout`` (``outage.py``) and writes the reports. Opening the driver is
``driver_setup.py``'s, opening the engine ``engine_setup.py``'s, the header lines
``header.py``'s."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..exploration.plan import Mode
from ..scenario.schema import CAPABILITIES, with_derived
from .driver_setup import (AUTO_CONCURRENCY, DEFAULT_STEP_TIMEOUT, concurrency, concurrency_kind,
                           driver_options, is_worker, load_driver, probe_driver, step_timeout)
from .engine_setup import ENGINE_CAPABILITIES, engine_pool, start_live, state_base
from .header import live_header, report_header
from .items import play_item, progress_for, run_item
from .leftovers import StateFolders, finish_live
from .options import Settings
from .outage import EngineWatch
from .replay import replay_command
from .results import Results

# Names that other modules import from here (the engine's capabilities: tests/test_stories.py,
# benchmarks/generated.py), kept where they were before the driver and engine setup moved out.
__all__ = ["AUTO_CONCURRENCY", "DEFAULT_STEP_TIMEOUT", "ENGINE_CAPABILITIES", "Suite"]


class Suite:
    """The conformance suite of one pytest session."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.factory = load_driver(settings)
        found = probe_driver(config, settings, self.factory)
        self.driver_caps, self.driver_label = found.capabilities, found.name
        #: exact, or approximate (wall-clock observations of an out-of-process driver)
        self.timing = found.timing
        #: The one namespace of a driver that is already running, if the factory says so.
        self.fixed_namespace: str | None = found.namespace
        self.results = Results(self)
        config.pluginmanager.register(self.results, "sandbox-conformance-results")
        if settings.shard is not None:
            from .shard import Shard

            config.pluginmanager.register(Shard(*settings.shard, self.results),
                                          "sandbox-conformance-shard")
        self.live = None
        self.engine = None
        #: What the sweep of dead sessions removed (a live session's controller only).
        self.swept = None
        self.gpu_styles: dict[str, str] = {}
        #: SANDBOX_CONFORMANCE_GPU_EMULATED=1: the engine's GPU requests reach no real GPU (CI's
        #: emulated engine); GPU items and the report say so.
        self.gpu_emulated = os.environ.get("SANDBOX_CONFORMANCE_GPU_EMULATED") == "1"
        if settings.engine == "fake":
            self.engine_caps = ENGINE_CAPABILITIES["fake"]
        else:
            started = start_live(config, settings, self.gpu_emulated)
            self.engine, self.live, self.swept = started.engine, started.live, started.swept
            self.gpu_styles, self.gpu_emulated = started.gpu_styles, started.gpu_emulated
            self.engine_caps = started.capabilities
        self.capabilities = with_derived(self.driver_caps | self.engine_caps)
        self.watch = EngineWatch(self.engine, settings.engine_timeout)
        self.state_folders = StateFolders(state_base(settings))
        #: What the end of a live session has to say (containers kept or left).
        self.leftover_message: str | None = None
        # What collection needs of the session (plugin/collect.py's Session).
        self.replay = settings.replay
        self.engine_name = settings.engine
        self.mode = Mode(settings.mode, settings.random_n, settings.random_seed,
                         restarts="restart" in self.capabilities,
                         list_orders="list-order" in self.capabilities,
                         max_schedules=settings.max_schedules)
        self.settings_summary = {"sandbox_driver": settings.driver,
                                 "sandbox_engine": settings.engine}
        self.concurrency = concurrency(settings, self.fixed_namespace)
        #: Whether a failing schedule is reduced (--sandbox-reduce; auto: on the fake engine,
        #: where a play takes milliseconds, not a real engine's seconds or a driver's polls).
        self.reduces = settings.reduce == "on" or (settings.reduce == "auto"
                                                   and settings.engine == "fake")
        #: Clients of the real engine for concurrent plays (one each), made on first use.
        self.engines = None
        if self.concurrency > 1 and self.engine is not None:
            self.engines = engine_pool(settings, self.engine)

    # -- driver and engine -----------------------------------------------------------------------

    @property
    def step_timeout(self) -> float:
        """The watchdog's deadline for one adapter call (``--sandbox-step-timeout``)."""
        return step_timeout(self.settings)

    @property
    def concurrency_kind(self) -> str:
        """``fake``, ``in-process`` (a driver object on a real engine) or ``driver-process``."""
        return concurrency_kind(self.settings)

    def _is_worker(self) -> bool:
        return is_worker(self.config)

    def make_engine(self):
        if self.engine is not None:
            return self.engine  # one client for the session; runs are separated by namespace
        from ..engines.fake import FakeEngine

        return FakeEngine()

    def run_config(self):
        from ..run.runner import RunConfig

        live = {}
        if self.live is not None:
            live = dict(ordered_lists=False, cleanup_engine=not self.settings.keep,
                        unique_sandbox_ids=True,
                        extra_labels=self.live.labels(),
                        namespace_prefix=self.live.namespace_prefix)
        return RunConfig(driver=self.factory, engine=self.make_engine, image=self.settings.image,
                         namespace=self.fixed_namespace, step_timeout=self.step_timeout, **live,
                         state_root=self.state_root(), replay=self.replay_command,
                         driver_options=self.driver_options())

    def driver_options(self) -> dict[str, str]:
        """The factory's options (``driver_setup.driver_options``)."""
        return driver_options(self.settings, self.concurrency)

    def state_root(self) -> Path | None:
        """Where each run's state folder goes: this process's session state folder
        (``leftovers.StateFolders``) under the state base (``engine_setup.state_base``)."""
        return self.state_folders.path()

    def state_base(self) -> Path:
        return state_base(self.settings)

    def replay_command(self, scenario, schedule) -> str:
        return replay_command(self.settings, scenario, schedule)

    # -- collection ------------------------------------------------------------------------------

    def scenario_paths(self) -> list[tuple[Path, str]]:
        """(file, node id) of every scenario file: the catalog, then --sandbox-scenarios."""
        from .collect import scenario_paths

        return scenario_paths(self.settings.builtin, self.settings.scenario_dirs,
                              self.config.rootpath)

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        """A replay (``--sandbox-schedule``) collects nothing but its scenario item: no test
        module of the folder it runs in (a project's own tests) runs beside it."""
        return True if self.settings.replay is not None else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        from _pytest.runner import collect_one_node

        from .collect import ScenarioFile

        added: list[pytest.Item] = []
        all_collected = True
        # --lf skips every file it cannot map back to a failed node id, once one file had a
        # failure; the catalog's node ids are no paths under the rootdir, so it would skip the
        # catalog. Let --lf select the scenario items by id instead (it does, after this).
        lf_skip = config.pluginmanager.get_plugin("lfplugin-collskip")
        if lf_skip is not None:
            config.pluginmanager.unregister(lf_skip)
        for path, nodeid in self.scenario_paths():
            node = ScenarioFile.from_parent(session, path=path, nodeid=nodeid)
            node.session_of_items = self
            report = collect_one_node(node)
            session.ihook.pytest_collectreport(report=report)
            if report.passed:
                added.extend(r for r in report.result if isinstance(r, pytest.Item))
            else:
                all_collected = False
        if self.mode.name == "generate" and self.settings.replay is None:
            added.extend(self._generated(session))
        if self.settings.replay is not None and not added and all_collected:
            # Otherwise a mistyped scenario id would silently run nothing.
            raise pytest.UsageError(
                f"--sandbox-schedule={'@'.join(self.settings.replay)}: no scenario "
                f"{self.settings.replay[0]!r} in the scenarios collected (the bundled catalog"
                + "".join(f", {d}" for d in self.settings.scenario_dirs) + ")")
        if self.settings.replay is not None and items:
            # Test files named on the command line are collected anyway: a replay runs none.
            config.hook.pytest_deselected(items=list(items))
            items.clear()
        items[:0] = added
        self.results.planned(added)

    def _generated(self, session: pytest.Session) -> list[pytest.Item]:
        """The items of ``--sandbox-schedules=generate:N`` (``generated.py``)."""
        from _pytest.runner import collect_one_node

        from .generated import GENERATED_NODE, GeneratedStories

        node = GeneratedStories.from_parent(session, name=GENERATED_NODE, nodeid=GENERATED_NODE)
        node.session_of_items = self
        report = collect_one_node(node)
        session.ihook.pytest_collectreport(report=report)
        return [r for r in report.result if isinstance(r, pytest.Item)] if report.passed else []

    def decorate(self, item) -> None:
        sc = item.scenario
        marks = set(sc.marks)
        if sc.needs_gpu:  # GPU scenarios: -m gpu
            marks.add("gpu")
        for mark in sorted(marks):
            item.add_marker(getattr(pytest.mark, mark))
        item.add_marker(getattr(pytest.mark, sc.profile))
        missing = sorted(sc.needs - self.capabilities)
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"{self.settings.driver} on engine {self.settings.engine} lacks "
                       f"capabilities: {', '.join(missing)} ("
                       + "; ".join(f"{m}: {CAPABILITIES[m]}" for m in missing) + ")"))

    # -- running ---------------------------------------------------------------------------------

    def play_item(self, item) -> None:
        """The item's setup phase: play it (an engine outage or a story error raises here: an
        error of the item)."""
        opt = self.config.option
        if getattr(opt, "setuponly", False) or getattr(opt, "setupplan", False):
            return
        if hasattr(item, "batch"):  # a batch of generated stories
            from .generated import play_generated

            self.watch.play(item, lambda: play_generated(self, item, self.run_config()))
            return
        self.watch.play(item, lambda: play_item(item, self.run_config(),
                                                progress_for(self.config, item),
                                                workers=self.concurrency, engines=self.engines,
                                                reduce=self.reduces))

    def run_item(self, item) -> None:
        """The item's call phase: its verdict."""
        run_item(item)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """An item's setup error shows its one block, and the block's first line as the
        message (-r, JUnit), as a conformance failure does."""
        outcome = yield
        self.watch.shape_report(item, call, outcome.get_result())

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """With -q pytest prints no header; the live session's id is printed anyway (it names
        the containers to look for)."""
        if self.live is None or self._is_worker() or self.config.get_verbosity() >= 0:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(self.live_header())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.watch.seen(report)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if not self._is_worker():
            for line in self.watch.summary():
                terminalreporter.write_line(line)
            if self.leftover_message:
                terminalreporter.write_line(self.leftover_message)

    def not_collected(self, parent: str, scenario, reason: str) -> None:
        self.results.not_collected(parent, scenario, reason)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        return report_header(self)

    def live_header(self) -> str:
        return live_header(self)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.engines is not None:
            self.engines.close()  # the clients it made (not the session's own)
        try:
            if not self._is_worker() and self.live is not None:
                try:
                    message = finish_live(self.live, self.settings.keep)
                finally:
                    self.engine.close()
                if message:  # said at the end of the terminal summary (or now, without one)
                    if self.config.pluginmanager.get_plugin("terminalreporter") is None:
                        print("\n" + message)
                    self.leftover_message = message
        finally:
            self.state_folders.close()
