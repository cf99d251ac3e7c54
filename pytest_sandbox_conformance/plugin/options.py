"""The plugin's options: one table gives every ``--sandbox-*`` flag and its ini twin.

Resolution order for each option: command line, then ini, then default (as Tavern's
``get_option_generic``). Values are validated once, eagerly, in ``pytest_configure``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..exploration.schedule import DEFAULT_MAX_SCHEDULES, MAX_EXHAUSTIVE
from ..reports.claim import IMPLEMENTATION_KEYS, parse_implementation
from . import option_checks as checks

__all__ = ["DRIVER_OPTION_FLAGS", "OPTIONS", "Option", "Settings", "add_options", "resolve"]


@dataclass(frozen=True)
class Option:
    name: str          # "driver" -> --sandbox-driver, ini sandbox_driver
    help: str
    default: Any = None
    kind: str = "string"   # string | bool | list
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--sandbox-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "sandbox_" + self.name

    @property
    def dest(self) -> str:
        return "sandbox_" + self.name


OPTIONS = (
    Option("driver", "driver to test: a registered name (default 'reference') or module:factory. "
           "Giving it (here or as ini sandbox_driver) turns the conformance suite on.",
           metavar="NAME|MODULE:FACTORY"),
    Option("engine", "container engine: 'fake' (in-memory, default), 'docker' or 'podman' "
           "(real containers through Docker's API)", "fake", metavar="ENGINE"),
    Option("engine_url", "where the real engine listens (default: DOCKER_HOST, else the current "
           "docker context, else the default socket; for podman unix:///run/podman/podman.sock)",
           metavar="URL"),
    Option("engine_timeout", "a real engine that does not answer for this long stops the "
           "session (verdict incomplete: engine unavailable); each engine call waits a third of "
           "it, at least 1 s (default 30)", "30", metavar="SECONDS"),
    Option("keep", "keep the containers of a live run for debugging (prints how to remove them)",
           False, "bool"),
    Option("gpu", "GPU scenarios on a live engine: auto (run where the engine supports GPU "
           "requests, else skip), required (absence is an error), off (skip them)", "auto",
           metavar="auto|required|off"),
    Option("scenarios", "extra folder of scenario files (repeatable)", [], "list", "DIR"),
    Option("no_builtin", "do not run the bundled scenario catalog", False, "bool"),
    Option("schedules", "which schedules to explore: pinned (default), exhaustive, "
           "random:N[:SEED], or generate:N[:SEED] (N generated stories besides the pinned "
           "schedules)", "pinned", metavar="MODE"),
    Option("max_schedules", "exhaustive mode: a scenario with more schedules than this plays a "
           f"prioritised sample of this many instead (default {DEFAULT_MAX_SCHEDULES}, at most "
           f"{MAX_EXHAUSTIVE}; docs/scenarios.md)", str(DEFAULT_MAX_SCHEDULES), metavar="N"),
    Option("schedule", "replay exactly one schedule, SCENARIO@SCHEDULE_ID as a failure prints it",
           metavar="SCENARIO@ID"),
    Option("report", "write the JSON conformance report to PATH (docs/reports.md)",
           metavar="PATH"),
    Option("html", "write the HTML report to PATH: one self-contained file (matrix of "
           "requirements x scenarios, each failure drawn as swimlanes)", metavar="PATH"),
    Option("claim", "write a conformance claim to PATH: YAML shaped like the Gateway API "
           "ConformanceReport (implementation, profiles, statistics, reproduce)",
           metavar="PATH"),
    Option("implementation", "KEY=VALUE for the claim's implementation (repeatable): "
           "organization, project, url, version, contact (repeatable)", [], "list",
           "KEY=VALUE"),
    Option("image", "image the driver runs sandboxes from", "sbx-busybox:local", metavar="REF"),
    Option("driver_option", "KEY=VALUE passed to the driver factory (repeatable)", [], "list",
           "KEY=VALUE"),
    Option("state_dir", "folder for drivers' durable state (default: a temporary folder)",
           metavar="DIR"),
    Option("driver_cmd", "openshell-grpc: the command line that starts the driver for each run "
           "({socket}, {state_dir}, {namespace}, {docker_host} are filled in); its engine URL is "
           "the observation gate, so schedules are exact", metavar="COMMAND"),
    Option("driver_socket", "openshell-grpc: the Unix socket of a driver that is already running "
           "(wall-clock observations: timing-approximate)", metavar="PATH"),
    Option("poll_interval", "openshell-grpc: the driver's poll interval in seconds (default 2.0); "
           "wall-clock mode waits this long per observation", metavar="SECONDS"),
    Option("step_timeout", "openshell-grpc: the longest one step (an RPC, an observation) may "
           "take before the scenario fails (default: poll interval + 3)", metavar="SECONDS"),
    Option("gate", "openshell-grpc with --sandbox-driver-cmd: auto (default: the driver's engine "
           "URL is the observation gate) or off (wall-clock observations)", "auto",
           metavar="auto|off"),
    Option("concurrency", "how many schedules of one item play at once (1 to 64), each isolated "
           "as when played alone, with the same results; auto (default): 16 for a driver process "
           "per run (--sandbox-driver-cmd), else 1 (docs/performance.md)", "auto",
           metavar="N|auto"),
    Option("reduce", "reduce a failing pinned or explored schedule to the fewest observations "
           "and restarts that still fail the same check (up to 40 plays): auto (default: on the "
           "fake engine, where plays are cheap), on, off", "auto", metavar="auto|on|off"),
    Option("shard", "run only part K of N of the items (the same part on every machine) and "
           "record it in the reports; sandbox-conformance merge-reports joins the parts' "
           "reports (docs/ci.md)", metavar="K/N"),
)

#: Options that are driver options under another name (--sandbox-driver-option KEY=VALUE).
DRIVER_OPTION_FLAGS = {"driver_cmd": "cmd", "driver_socket": "socket",
                       "poll_interval": "poll_interval", "step_timeout": "step_timeout"}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("sandbox", "sandbox driver conformance (pytest-sandbox-conformance)")
    for opt in OPTIONS:
        if opt.kind == "bool":
            group.addoption(opt.flag, action="store_true", default=None, dest=opt.dest,
                            help=opt.help)
            parser.addini(opt.ini, opt.help, type="bool", default=opt.default)
        elif opt.kind == "list":
            group.addoption(opt.flag, action="append", default=None, dest=opt.dest,
                            metavar=opt.metavar, help=opt.help)
            parser.addini(opt.ini, opt.help, type="linelist", default=[])
        else:
            group.addoption(opt.flag, action="store", default=None, dest=opt.dest,
                            metavar=opt.metavar, help=opt.help)
            parser.addini(opt.ini, opt.help, type="string", default=opt.default)


def resolve(config: pytest.Config, opt: Option) -> Any:
    """Command line, then ini, then the default."""
    value = config.getoption(opt.dest)
    if value is not None:
        return value
    ini = config.getini(opt.ini)
    if opt.kind == "list":
        return list(ini) if ini else list(opt.default)
    if opt.kind == "bool":
        return bool(ini)
    return ini if ini not in (None, "") else opt.default


#: The engines --sandbox-engine accepts.
ENGINES = ("fake", "docker", "podman")

_RANDOM = re.compile(r"^(random|generate):(\d+)(?::(\d+))?$")


@dataclass(frozen=True)
class Settings:
    """The validated options of a session."""

    active: bool
    driver: str
    engine: str
    engine_url: str | None
    keep: bool
    gpu: str
    scenario_dirs: tuple[Path, ...]
    builtin: bool
    mode: str                 # pinned | exhaustive | random | generate
    random_n: int
    random_seed: int
    replay: tuple[str, str] | None
    report: Path | None
    image: str
    driver_options: dict[str, str]
    state_dir: Path | None
    #: The driver options that came from their own flags (they also are in driver_options).
    flag_options: dict[str, str]
    html: Path | None = None
    claim: Path | None = None
    #: The claim's implementation: organization, project, url, version (str), contact (list).
    implementation: dict[str, Any] | None = None
    #: Seconds a real engine may not answer before the session stops (--sandbox-engine-timeout).
    engine_timeout: float = 30.0
    #: Schedules of one item played at once (--sandbox-concurrency); None: auto.
    concurrency: int | None = None
    #: (K, N): this session runs part K of N of the items (--sandbox-shard).
    shard: tuple[int, int] | None = None
    #: Above this many schedules, exhaustive mode plays a sample (--sandbox-max-schedules).
    max_schedules: int = DEFAULT_MAX_SCHEDULES
    #: Reduce a failing schedule (--sandbox-reduce): auto, on or off.
    reduce: str = "auto"

    @property
    def engine_call_timeout(self) -> float:
        """The per-call timeout of a real engine: a third of the engine timeout, 1 to 60 s."""
        return min(60.0, max(1.0, self.engine_timeout / 3))

    @classmethod
    def from_config(cls, config: pytest.Config) -> "Settings":
        get = {o.name: resolve(config, o) for o in OPTIONS}
        given = {o.name: config.getoption(o.dest) for o in OPTIONS}  # the command line's
        for opt in OPTIONS:  # an empty value is never "the default" in disguise
            if opt.kind == "string" and given[opt.name] is not None \
                    and not str(given[opt.name]).strip():
                raise pytest.UsageError(f"{opt.flag}= is empty: give a value, or leave the "
                                        "option out for its default")
            if opt.kind == "list" and any(not str(v).strip() for v in given[opt.name] or ()):
                raise pytest.UsageError(f"{opt.flag}= is empty: give a value, or leave the "
                                        "option out")
        active = (given["driver"] is not None or bool(config.getini("sandbox_driver"))
                  or given["schedule"] is not None)
        if get["driver"]:
            checks.check_driver_spec(get["driver"])
        mode_text = get["schedules"]
        n = seed = 0
        if mode_text in ("pinned", "exhaustive"):
            mode = mode_text
        else:
            m = _RANDOM.match(mode_text)
            if not m:
                raise pytest.UsageError(
                    f"--sandbox-schedules={mode_text}: use pinned, exhaustive, random:N[:SEED] "
                    "or generate:N[:SEED]")
            mode, n, seed = m.group(1), int(m.group(2)), int(m.group(3) or 0)
            if not 1 <= n <= MAX_EXHAUSTIVE:
                draws = "schedules" if mode == "random" else "stories"
                raise pytest.UsageError(f"--sandbox-schedules={mode_text}: N must be 1 to "
                                        f"{MAX_EXHAUSTIVE} ({mode}:N draws N {draws})")
        max_schedules = checks.check_max_schedules(get["max_schedules"], MAX_EXHAUSTIVE)
        if given["max_schedules"] is not None and mode != "exhaustive":
            raise pytest.UsageError(f"--sandbox-max-schedules={given['max_schedules']} applies "
                                    "to --sandbox-schedules=exhaustive; with "
                                    f"{mode_text} it would be ignored")
        replay = None
        if get["schedule"]:
            scenario, sep, sched = get["schedule"].partition("@")
            if not sep or not scenario or not sched:
                raise pytest.UsageError(f"--sandbox-schedule={get['schedule']}: use "
                                        "SCENARIO@SCHEDULE_ID, as a failure prints it")
            if given["schedules"] is not None:
                raise pytest.UsageError(f"--sandbox-schedules={given['schedules']} beside "
                                        f"--sandbox-schedule={get['schedule']}: a replay plays "
                                        "exactly one schedule; drop one of them")
            replay = (scenario, sched)
        if get["engine"] not in ENGINES:
            raise pytest.UsageError(
                f"--sandbox-engine={get['engine']}: unknown engine; available: "
                f"{', '.join(ENGINES)}")
        if get["gpu"] not in ("auto", "required", "off"):
            raise pytest.UsageError(f"--sandbox-gpu={get['gpu']}: use auto or required or off")
        if get["reduce"] not in ("auto", "on", "off"):
            raise pytest.UsageError(f"--sandbox-reduce={get['reduce']}: use auto or on or off")
        if get["engine"] == "fake":
            ignored = [f for f, on in (("--sandbox-engine-url", get["engine_url"]),
                                       ("--sandbox-engine-timeout",
                                        given["engine_timeout"] is not None),
                                       ("--sandbox-keep", get["keep"]),
                                       ("--sandbox-gpu", get["gpu"] != "auto")) if on]
            if ignored:
                raise pytest.UsageError(f"{ignored[0]} applies to a real engine "
                                        "(--sandbox-engine=docker or podman); the fake engine "
                                        "would ignore it")
        if get["engine_url"]:
            checks.check_url(get["engine_url"])
        engine_timeout = checks.check_seconds("--sandbox-engine-timeout", get["engine_timeout"])
        options = {}
        for item in get["driver_option"]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise pytest.UsageError(f"--sandbox-driver-option={item}: use KEY=VALUE")
            if key in options:
                raise pytest.UsageError(f"--sandbox-driver-option={item}: {key} is given twice "
                                        f"(also ={options[key]}); the first would be ignored")
            options[key] = value
        flag_options = {}
        for name, key in DRIVER_OPTION_FLAGS.items():
            value = get[name]
            if value in (None, ""):
                continue
            flag = "--sandbox-" + name.replace("_", "-")
            if key in options:
                raise pytest.UsageError(f"{flag}={value} and --sandbox-driver-option={key}="
                                        f"{options[key]} set the same driver option; give one")
            flag_options[key] = options[key] = str(value)
        if "cmd" in flag_options and "socket" in flag_options:
            raise pytest.UsageError("--sandbox-driver-cmd and --sandbox-driver-socket exclude "
                                    "each other: the suite starts the driver, or it is running")
        if get["gate"] not in ("auto", "off"):
            raise pytest.UsageError(f"--sandbox-gate={get['gate']}: use auto or off")
        if get["gate"] != "auto":
            if "cmd" not in options:
                raise pytest.UsageError(f"--sandbox-gate={get['gate']} applies to a driver the "
                                        "suite starts (--sandbox-driver-cmd); without one it "
                                        "would be ignored")
            flag_options["gate"] = options["gate"] = get["gate"]
        for key in checks.SECONDS_OPTIONS:
            if key in options:
                flag = next((f"--sandbox-{n.replace('_', '-')}" for n, k in
                             DRIVER_OPTION_FLAGS.items() if k == key and k in flag_options),
                            f"--sandbox-driver-option={key}")
                checks.check_seconds(flag, options[key], zero=key in checks.ZERO_ALLOWED)
        if "cmd" in options:
            checks.check_command(options["cmd"])
        if "socket" in flag_options:
            checks.check_socket(options["socket"])
        if (get["driver"] or "reference") == "reference" and options:
            flag = ("--sandbox-" + next(n for n, k in DRIVER_OPTION_FLAGS.items()
                                        if k == next(iter(flag_options))).replace("_", "-")
                    if flag_options else f"--sandbox-driver-option={next(iter(options))}")
            raise pytest.UsageError(f"{flag}: the reference driver takes no driver options; "
                                    "they are for an adapter that reads them (openshell-grpc: "
                                    "docs/grpc.md)")
        dirs = []
        # Relative folders: from the command line, against where pytest was invoked; from the
        # ini file, against the ini file's folder (as pytest's own "paths" ini values).
        from_ini = given["scenarios"] is None and config.inipath is not None
        base = config.inipath.parent if from_ini else config.invocation_params.dir
        for d in get["scenarios"]:
            p = Path(d)
            if not p.is_absolute():
                p = base / p
            if not p.is_dir():
                raise pytest.UsageError(f"--sandbox-scenarios={d}: no such folder ({p})")
            p = p.resolve()
            if p in dirs:
                raise pytest.UsageError(f"--sandbox-scenarios={d}: {p} is given twice (its "
                                        "scenarios would be collected twice)")
            if not os.access(p, os.R_OK | os.X_OK):
                raise pytest.UsageError(f"--sandbox-scenarios={d}: {p} cannot be read")
            dirs.append(p)
        if not get["no_builtin"] and dirs:
            from .collect import catalog_dir

            if catalog_dir().resolve() in dirs:
                raise pytest.UsageError(f"--sandbox-scenarios={catalog_dir().resolve()} is the "
                                        "bundled catalog, collected anyway: add "
                                        "--sandbox-no-builtin, or leave it out")
        if get["no_builtin"] and not dirs:
            raise pytest.UsageError("--sandbox-no-builtin without --sandbox-scenarios=DIR leaves "
                                    "no scenario to run")
        where = config.invocation_params.dir
        outputs = {name: checks.check_output_path(f"--sandbox-{name}", get[name], where)
                   if get[name] else None for name in ("report", "html", "claim")}
        state_dir = checks.check_state_dir(get["state_dir"], where) if get["state_dir"] else None
        concurrency = checks.check_concurrency(get["concurrency"])
        shard = checks.check_shard(get["shard"]) if get["shard"] else None
        if shard is not None and replay is not None:
            raise pytest.UsageError(f"--sandbox-shard={get['shard']} beside --sandbox-schedule="
                                    f"{get['schedule']}: a replay plays one schedule; drop "
                                    "--sandbox-shard")
        return cls(
            active=active, driver=get["driver"] or "reference", engine=get["engine"],
            engine_url=get["engine_url"], keep=bool(get["keep"]), gpu=get["gpu"],
            scenario_dirs=tuple(dirs), builtin=not get["no_builtin"], mode=mode, random_n=n,
            random_seed=seed, replay=replay,
            report=outputs["report"], html=outputs["html"], claim=outputs["claim"],
            implementation=_implementation(get["implementation"]), image=get["image"],
            driver_options=options, state_dir=state_dir, flag_options=flag_options,
            engine_timeout=engine_timeout, concurrency=concurrency, shard=shard,
            max_schedules=max_schedules, reduce=get["reduce"])


def _implementation(values: list[str]) -> dict[str, Any]:
    try:
        return parse_implementation(values)
    except ValueError as exc:
        raise pytest.UsageError(
            f"--sandbox-implementation={exc}: use KEY=VALUE with KEY one of "
            f"{', '.join(IMPLEMENTATION_KEYS)} and a value") from None
