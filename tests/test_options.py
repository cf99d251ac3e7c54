"""Bad option values: each is one line of usage error before anything runs, never an
INTERNALERROR, a traceback per item, or a value silently ignored (docs/reliability.md).

Every case runs pytest in a pytester folder with one small scenario file; the error must be the
only line on stderr and name the option.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pytest_sandbox_conformance.plugin.option_checks import MAX_SECONDS
from pytest_sandbox_conformance.plugin.collect import catalog_dir

PLUGINS = ("-p", "sandbox_conformance", "-p", "no:hypothesispytest", "-p", "no:cacheprovider")

SCENARIO = """
id: basic
title: One sandbox
requirements: [OWN-1]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
"""

GRPC = ("--sandbox-driver=openshell-grpc", "--sandbox-engine=docker")


def _cases(tmp: Path) -> list[tuple[tuple[str, ...], str]]:
    """(arguments, what the one error line must contain), in classes."""
    a_file = tmp / "a-file"
    a_file.write_text("x")
    return [
        # A driver that is no NAME or MODULE:FACTORY, or no factory.
        (("--sandbox-driver=::",), "--sandbox-driver=::: give a registered driver name"),
        (("--sandbox-driver=mod:",), "--sandbox-driver=mod:: give a registered"),
        (("--sandbox-driver=:factory",), "--sandbox-driver=:factory: give a registered"),
        (("--sandbox-driver=my mod:f",), "--sandbox-driver=my mod:f: give a registered"),
        (("--sandbox-driver=os:getcwd",), "is not an adapter factory: a factory takes one "
                                          "argument"),
        (("--sandbox-driver=broken_import:factory",), "--sandbox-driver=broken_import:factory: "
                                                      "importing it failed: RuntimeError"),
        # Engine URLs that do not parse, or that the fake engine would ignore.
        (("--sandbox-engine=docker", "--sandbox-engine-url=http://[bad"),
         "--sandbox-engine-url=http://[bad: not a URL"),
        (("--sandbox-engine=docker", "--sandbox-engine-url=ftp://host"), "use unix:///"),
        (("--sandbox-engine=docker", "--sandbox-engine-url=unix://"), "give the socket's path"),
        (("--sandbox-engine=docker", "--sandbox-engine-url=tcp://:2375"), "no host in it"),
        (("--sandbox-engine=docker", "--sandbox-engine-url=tcp://host:port"), "not a URL"),
        (("--sandbox-engine-url=unix:///var/run/docker.sock",), "applies to a real engine"),
        (("--sandbox-keep",), "--sandbox-keep applies to a real engine"),
        (("--sandbox-gpu=required",), "--sandbox-gpu applies to a real engine"),
        # Places the suite cannot write, read or use.
        ((f"--sandbox-report={tmp}",), f"--sandbox-report={tmp}: is a folder ({tmp}); give the "
                                       "path of the file to write"),
        (("--sandbox-html=/proc/x.html",), "--sandbox-html=/proc/x.html: cannot write in /proc"),
        ((f"--sandbox-report={a_file}/r.json",), "is a file, not a folder"),
        (("--sandbox-report=/proc/r.json",), "cannot write in /proc"),
        ((f"--sandbox-state-dir={a_file}",), "is not a folder"),
        (("--sandbox-state-dir=/proc",), "cannot make the runs' state folders in /proc"),
        (("--sandbox-scenarios=scen", "--sandbox-scenarios=./scen"), "is given twice"),
        ((f"--sandbox-scenarios={catalog_dir()}",), "is the bundled catalog"),
        (("--sandbox-no-builtin",), "leaves no scenario to run"),
        # Commands that cannot run as given.
        ((*GRPC, "--sandbox-driver-cmd=drv 'unclosed"), "cannot be split into arguments"),
        ((*GRPC, "--sandbox-driver-cmd=true {sockett}"),
         "unknown placeholder {sockett} (did you mean {socket}?)"),
        ((*GRPC, "--sandbox-driver-cmd=no-such-program-here {socket}"), "no program"),
        ((*GRPC, f"--sandbox-driver-socket={a_file}"), "not a Unix socket"),
        ((*GRPC, f"--sandbox-driver-socket={tmp}/nothing.sock"), "no such socket"),
        # Numbers that would switch a limit off, or are no limit at all.
        *[((*GRPC, "--sandbox-driver-cmd=true {socket}", f"--sandbox-poll-interval={v}"),
           f"--sandbox-poll-interval={v}: give a number of seconds above 0 and at most")
          for v in ("inf", "1e308", "nan", "-1", "0", str(MAX_SECONDS + 1), "soon")],
        ((*GRPC, "--sandbox-driver-cmd=true {socket}", "--sandbox-step-timeout=inf"),
         "--sandbox-step-timeout=inf: give a number"),
        ((*GRPC, "--sandbox-driver-cmd=true {socket}", "--sandbox-driver-option=quiet=inf"),
         "--sandbox-driver-option=quiet=inf: give a number of seconds from 0 and at most"),
        ((*GRPC, "--sandbox-driver-cmd=true {socket}", "--sandbox-driver-option=quiet=-1"),
         "--sandbox-driver-option=quiet=-1: give a number of seconds from 0"),
        (("--sandbox-schedules=random:0",), "N must be 1 to"),
        (("--sandbox-schedules=random:99999999999999999999",), "N must be 1 to"),
        # Options that would be ignored beside others.
        (("--sandbox-schedules=exhaustive", "--sandbox-schedule=basic@1-0"),
         "a replay plays exactly one schedule"),
        ((*GRPC, "--sandbox-driver-socket=/x", "--sandbox-gate=off"),
         "--sandbox-gate=off applies to a driver the suite starts"),
        (("--sandbox-driver-option=a=1",), "the reference driver takes no driver options"),
        ((*GRPC, "--sandbox-driver-option=cmd=true", "--sandbox-driver-option=cmd=false"),
         "cmd is given twice"),
        ((*GRPC, "--sandbox-driver-cmd=true", "--sandbox-driver-option=cmd=false"),
         "set the same driver option"),
        # Empty values: never the default in disguise.
        *[((f"--sandbox-{name}=",), f"--sandbox-{name}= is empty")
          for name in ("driver", "report", "state-dir", "engine-url", "schedule", "image",
                       "scenarios", "driver-cmd", "poll-interval")],
    ]


def test_every_bad_option_value_is_one_line_of_usage_error(pytester: pytest.Pytester,
                                                           tmp_path: Path) -> None:
    pytester.makefile(".yaml", **{"scen/basic": SCENARIO})
    pytester.makepyfile(broken_import="raise RuntimeError('this module is broken')\n")
    pytester.syspathinsert()
    problems = []
    cases = _cases(tmp_path)
    for args, expected in cases:
        has_driver = any(a.startswith("--sandbox-driver=") for a in args)
        has_scen = any(a.startswith(("--sandbox-scenarios", "--sandbox-no-builtin"))
                       for a in args)
        full = [*PLUGINS, *(() if has_driver else ("--sandbox-driver=reference",)),
                *(() if has_scen else ("--sandbox-scenarios=scen", "--sandbox-no-builtin")),
                *args]
        result = pytester.runpytest(*full)
        lines = [line for line in result.stderr.lines if line.strip()]
        shown = " ".join(args)
        if result.ret != pytest.ExitCode.USAGE_ERROR:
            problems.append(f"{shown}: exit {result.ret!r}, not a usage error")
        elif len(lines) != 1 or not lines[0].startswith("ERROR: ") or expected not in lines[0]:
            problems.append(f"{shown}: expected one line with {expected!r}, got {lines}")
        elif "Traceback" in result.stdout.str() or "INTERNALERROR" in result.stdout.str():
            problems.append(f"{shown}: a traceback")
    assert not problems, f"{len(problems)} of {len(cases)} values:\n" + "\n".join(problems)


def test_good_values_still_pass(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makefile(".yaml", **{"scen/basic": SCENARIO})
    report = tmp_path / "new" / "folder" / "report.json"
    result = pytester.runpytest(*PLUGINS, "--sandbox-driver=reference",
                                "--sandbox-scenarios=scen", "--sandbox-no-builtin",
                                f"--sandbox-report={report}",
                                f"--sandbox-state-dir={tmp_path / 'state' / 'made'}")
    assert result.ret == 0, result.stdout.str()
    assert report.is_file()


def test_a_unix_socket_is_accepted_as_a_running_driver(tmp_path: Path) -> None:
    from pytest_sandbox_conformance.plugin.option_checks import check_socket

    path = str(tmp_path / "d.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
        check_socket(path)
    assert os.path.exists(path)


def test_a_margin_may_be_zero_a_limit_may_not() -> None:
    from pytest_sandbox_conformance.plugin.option_checks import check_seconds

    assert check_seconds("--sandbox-driver-option=quiet", "0", zero=True) == 0
    assert check_seconds("--sandbox-poll-interval", "0.01") == 0.01
    with pytest.raises(pytest.UsageError, match="above 0"):
        check_seconds("--sandbox-poll-interval", "0")
