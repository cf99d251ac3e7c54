"""The conformance suite of one pytest session: a plugin object registered by ``pytest_configure``
when the suite is on. It checks the driver's adapter (``adapters/validate.py``), opens the engine,
collects the scenario files, runs items through the runner (each item plays in its setup phase,
so an engine outage or a refused story step is an *error* of the item, and is judged in its call
phase: see ``items.py``), stops the session once the engine has not answered for
``--sandbox-engine-timeout`` (``outage.py``) and writes the reports."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ..exploration.plan import Mode
from ..scenario.schema import CAPABILITIES
from .items import play_item, progress_for, run_item
from .leftovers import StateFolders, finish_live
from .option_checks import check_factory
from .options import Settings
from .outage import EngineWatch
from .replay import replay_command
from .results import Results

__all__ = ["Suite"]

#: The watchdog's deadline for one call of an in-process adapter without --sandbox-step-timeout.
DEFAULT_STEP_TIMEOUT = 30.0

#: ``--sandbox-concurrency=auto``: schedules of one item played at once, by what the plays wait on
#: (measured: docs/performance.md, *Concurrent schedules*). The fake engine and in-process
#: drivers are CPU bound (the GIL: threads would only add switching); a driver process per play
#: (openshell-grpc with --sandbox-driver-cmd) mostly waits for its polls.
AUTO_CONCURRENCY = {"fake": 1, "in-process": 1, "driver-process": 16}

#: What each engine offers scenarios.
ENGINE_CAPABILITIES = {
    "fake": frozenset({"list-order", "engine-faults", "states", "gpu-gpus", "gpu-cdi",
                       "gpu-runtime"}),
}


class Suite:
    """The conformance suite of one pytest session."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        from ..adapters.base import AdapterLoadError, load_factory

        self.config = config
        self.settings = settings
        try:
            self.factory = load_factory(settings.driver)
        except AdapterLoadError as exc:
            raise pytest.UsageError(str(exc)) from None
        except Exception as exc:  # the module's own import failed (a SyntaxError, ...)
            raise pytest.UsageError(f"--sandbox-driver={settings.driver}: importing it failed: "
                                    f"{type(exc).__name__}: {exc}") from None
        check_factory(self.factory, settings.driver)
        self.driver_caps, self.driver_label = self._probe()
        self.results = Results(self)
        config.pluginmanager.register(self.results, "sandbox-conformance-results")
        if settings.shard is not None:
            from .shard import Shard

            config.pluginmanager.register(Shard(*settings.shard, self.results),
                                          "sandbox-conformance-shard")
        self.live = None
        self.engine = None
        self.gpu_styles: dict[str, str] = {}
        #: SANDBOX_CONFORMANCE_GPU_EMULATED=1: the engine's GPU requests reach no real GPU (CI's
        #: emulated engine); GPU items and the report say so.
        self.gpu_emulated = os.environ.get("SANDBOX_CONFORMANCE_GPU_EMULATED") == "1"
        if settings.engine == "fake":
            self.engine_caps = ENGINE_CAPABILITIES["fake"]
        else:
            self.engine_caps = self._start_live()
        self.capabilities = self.driver_caps | self.engine_caps
        self.watch = EngineWatch(self.engine, settings.engine_timeout)
        self.state_folders = StateFolders(self.state_base())
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
        self.concurrency = self._concurrency()
        #: Clients of the real engine for concurrent plays (one each), made on first use.
        self.engines = None
        if self.concurrency > 1 and self.engine is not None:
            from ..run.concurrent import EnginePool

            url = getattr(self.engine, "base_url", None)
            self.engines = EnginePool(self._open_engine, first=self.engine,
                                      where=settings.engine + (f" at {url}" if url else ""))

    # -- driver and engine -----------------------------------------------------------------------

    def _probe(self) -> tuple[frozenset[str], str]:
        """The driver's capabilities and name, once its adapter is checked: from the factory's
        ``probe(options, engine)``, its ``capabilities`` attribute, or a throwaway instance on
        the fake engine (``adapters/validate.py``); every problem is one line of a usage
        error."""
        from ..adapters.base import AdapterLoadError
        from ..adapters.validate import validate_driver

        s = self.settings
        try:
            found = validate_driver(self.factory, s.driver, dict(s.driver_options), s.engine,
                                    s.image, self.step_timeout)
        except AdapterLoadError as exc:
            raise pytest.UsageError(str(exc)) from None
        #: exact, or approximate (wall-clock observations of an out-of-process driver)
        self.timing = found.timing
        #: The one namespace of a driver that is already running, if the factory says so.
        self.fixed_namespace: str | None = found.namespace
        if found.namespace and (getattr(self.config.option, "numprocesses", None)
                                or self._is_worker()):
            raise pytest.UsageError(
                f"--sandbox-driver={s.driver}: a running driver works in one namespace "
                f"({found.namespace}), so scenarios must run one at a time: drop -n")
        return found.capabilities, found.name

    @property
    def step_timeout(self) -> float:
        """The watchdog's deadline for one adapter call (``--sandbox-step-timeout``)."""
        value = self.settings.driver_options.get("step_timeout")
        try:
            return float(value) if value else DEFAULT_STEP_TIMEOUT
        except ValueError:
            return DEFAULT_STEP_TIMEOUT

    def _concurrency(self) -> int:
        """``--sandbox-concurrency``, or what ``auto`` means for this engine and driver."""
        s = self.settings
        if self.fixed_namespace and (s.concurrency or 1) > 1:
            raise pytest.UsageError(
                f"--sandbox-concurrency={s.concurrency}: a running driver works in one namespace "
                f"({self.fixed_namespace}), so its schedules must play one at a time: drop it")
        if s.concurrency is not None:
            return s.concurrency
        if self.fixed_namespace:
            return 1
        return AUTO_CONCURRENCY[self.concurrency_kind]

    @property
    def concurrency_kind(self) -> str:
        """``fake``, ``in-process`` (a driver object on a real engine) or ``driver-process``."""
        if self.settings.engine == "fake":
            return "fake"
        return "driver-process" if "cmd" in self.settings.driver_options else "in-process"

    def _open_engine(self):
        """Another client of the session's real engine (for a concurrent play)."""
        from ..live import open_engine

        s = self.settings
        return open_engine(s.engine, s.engine_url, timeout=s.engine_call_timeout)

    def _is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def _start_live(self) -> frozenset[str]:
        """Open the real engine, make sure the image is there, claim a session, sweep leftovers
        of dead sessions, and find out which GPU request styles the engine honours."""
        from reference_driver.naming import LabelKeys

        from ..engines.base import EngineError
        from ..live import LiveSession, open_engine

        s = self.settings
        try:
            from ..engines.image import ensure_image

            self.engine = open_engine(s.engine, s.engine_url, timeout=s.engine_call_timeout)
            ensure_image(self.engine, s.image)
        except (EngineError, ImportError) as exc:
            if self.engine is not None:
                self.engine.close()
            raise pytest.UsageError(f"--sandbox-engine={s.engine}: {exc}") from None
        if self._is_worker():
            session = self.config.workerinput["testrunuid"]  # type: ignore[attr-defined]
        else:
            session = getattr(self.config.option, "testrunuid", None)
            if session is None and self.config.pluginmanager.hasplugin("xdist"):
                import uuid

                session = uuid.uuid4().hex
                self.config.option.testrunuid = session  # shared with xdist's workers
        self.live = LiveSession(self.engine, LabelKeys().namespace, session)
        self.swept = None
        if not self._is_worker():
            self.live.acquire()
        try:
            if not self._is_worker():
                self.swept = self.live.sweep()
            return self._engine_capabilities()
        except BaseException:
            self.live.release()
            self.engine.close()
            raise

    def _engine_capabilities(self) -> frozenset[str]:
        from ..live.gpu import probe_gpu_styles

        s = self.settings
        caps = {"live"}
        if s.gpu != "off":
            styles = probe_gpu_styles(self.engine, s.image, self.live.labels())
            self.gpu_styles = {g.capability: str(g) for g in styles}
            self.gpu_emulated = self.gpu_emulated or any(not g.real for g in styles)
            caps |= set(self.gpu_styles)
            if s.gpu == "required" and not self.gpu_styles:
                raise pytest.UsageError(
                    f"--sandbox-gpu=required: engine {s.engine} at "
                    f"{getattr(self.engine, 'base_url', '?')} puts no GPU request style in "
                    "effect (--gpus, CDI, nvidia runtime); see docs/ci.md")
        return frozenset(caps)

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
        """The factory's options; with driver processes played at once and no
        --sandbox-step-timeout, a step timeout that allows for the shared engine
        (``run/concurrent.py``'s :func:`step_timeout_at_once`)."""
        options = dict(self.settings.driver_options)
        if self.concurrency > 1 and "cmd" in options and "step_timeout" not in options:
            from ..run.concurrent import step_timeout_at_once

            poll = float(options.get("poll_interval", 2.0))
            options["step_timeout"] = f"{step_timeout_at_once(poll, self.concurrency):g}"
        return options

    def state_root(self) -> Path | None:
        """Where each run's state folder goes: this process's session state folder
        (``leftovers.StateFolders``) under the state base."""
        return self.state_folders.path()

    def state_base(self) -> Path:
        """--sandbox-state-dir, else a memory-backed folder (/dev/shm) when there is one, else
        the system's temporary folder. Journals fsync on every change; on a memory-backed folder
        that costs nothing, and no check depends on real disk durability (crashes are injected,
        not suffered)."""
        if self.settings.state_dir is not None:
            self.settings.state_dir.mkdir(parents=True, exist_ok=True)
            return self.settings.state_dir
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            return shm
        return Path(tempfile.gettempdir())

    def replay_command(self, scenario, schedule) -> str:
        return replay_command(self.settings, scenario, schedule)

    # -- collection ------------------------------------------------------------------------------

    def scenario_paths(self) -> list[tuple[Path, str]]:
        """(file, node id) of every scenario file: the catalog, then --sandbox-scenarios."""
        from .collect import catalog_dir, scenario_files

        found: list[tuple[Path, str]] = []
        if self.settings.builtin:
            base = catalog_dir()
            found += [(p, "sandbox-catalog/" + p.relative_to(base).as_posix())
                      for p in scenario_files(base)]
        root = self.config.rootpath
        for d in self.settings.scenario_dirs:
            for p in scenario_files(d):
                try:
                    nodeid = p.relative_to(root).as_posix()
                except ValueError:
                    nodeid = f"sandbox-scenarios/{d.name}/{p.relative_to(d).as_posix()}"
                found.append((p, nodeid))
        return found

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
                                                workers=self.concurrency, engines=self.engines))

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
        s = self.settings
        lines = [f"sandbox conformance: driver {self.driver_label} "
                f"(capabilities: {', '.join(sorted(self.driver_caps)) or 'none'}), engine "
                f"{s.engine}, schedules {s.mode}"
                + (f" {s.random_n} seed {s.random_seed}" if s.mode in ("random", "generate")
                   else "")
                + (f" (a sample of {s.max_schedules} above {s.max_schedules} schedules)"
                   if s.mode == "exhaustive" else "")
                + (f", {self.concurrency} at once" if self.concurrency > 1 else "")]
        if self.timing == "approximate":
            lines.append("sandbox conformance: TIMING APPROXIMATE: the driver polls on its own "
                         "clock and the suite waits for it (no observation gate); schedules are "
                         "not exact and results are marked timing-approximate")
        if self.state_folders.swept:
            lines[0] += (f"; swept {len(self.state_folders.swept)} state folder(s) of dead "
                         "processes")
        if self.live is not None:
            lines.append(self.live_header())
        return lines

    def live_header(self) -> str:
        s = self.settings
        gpu = "; ".join(self.gpu_styles[k] for k in sorted(self.gpu_styles)) or "none"
        if self.gpu_emulated and self.gpu_styles:
            gpu += " -- EMULATED: no real GPU, GPU items are labelled gpu-emulated"
        swept = ""
        if self.swept is not None:
            swept = (f"; swept {len(self.swept.removed)} leftover container(s) of dead sessions"
                     + (f" ({', '.join(self.swept.sessions)}; {self.swept.locks} lock file(s))"
                        if self.swept.sessions else "")
                     + (f", left {self.swept.foreign} of other live sessions alone"
                        if self.swept.foreign else ""))
        return (f"live engine {s.engine} at {getattr(self.engine, 'base_url', '?')}, image "
                f"{s.image}, session {self.live.session}; GPU request styles: {gpu}{swept}")

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
