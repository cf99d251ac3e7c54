"""The checks of option values that need more than their own text: paths, URLs, commands,
numbers with limits, and options that would be silently ignored beside others.

Every problem is one ``pytest.UsageError`` naming the option and the value, raised in
``pytest_configure`` before anything is collected or run (``docs/reliability.md``). The classes:

* **empty values** (``--sandbox-report=``): never "the default" in disguise;
* **malformed values**: a driver spec that is no ``NAME`` or ``MODULE:FACTORY``, an engine URL
  that does not parse or has another scheme, a driver command with an unclosed quote, an unknown
  ``{placeholder}`` or a program that does not exist;
* **places the suite cannot use**: a report path (``--sandbox-report``, ``--sandbox-html``,
  ``--sandbox-claim``) that is a folder or lies under a file or an unwritable folder, a state folder that is a file or in which no folder can be made, a
  scenario folder given twice or equal to the bundled catalog, a driver socket that is not one;
* **numbers that switch a limit off**: ``inf``, ``nan``, ``1e308`` seconds (:data:`MAX_SECONDS`);
* **options that would be ignored**: an engine URL, ``--sandbox-engine-timeout``,
  ``--sandbox-keep`` or ``--sandbox-gpu`` with
  the fake engine, ``--sandbox-schedules`` beside ``--sandbox-schedule``,
  ``--sandbox-max-schedules`` without ``--sandbox-schedules=exhaustive``, ``--sandbox-gate``
  without ``--sandbox-driver-cmd``, driver options for the reference driver (which takes none),
  a driver option given twice or both as a flag and as ``--sandbox-driver-option``,
  ``--sandbox-no-builtin`` without ``--sandbox-scenarios``.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import re
import shlex
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import pytest

__all__ = ["MAX_CONCURRENCY", "MAX_SECONDS", "MAX_SHARDS", "check_command", "check_concurrency",
           "check_driver_spec", "check_factory", "check_max_schedules", "check_output_path",
           "check_seconds", "check_shard", "check_socket", "check_state_dir", "check_url"]

#: The longest poll interval, step timeout or other driver time the suite accepts, in seconds.
MAX_SECONDS = 600.0
#: Driver options that are times in seconds (the openshell-grpc adapter's).
SECONDS_OPTIONS = ("poll_interval", "step_timeout", "poll_margin", "start_timeout", "quiet")
#: What ``--sandbox-driver-cmd`` fills in.
PLACEHOLDERS = ("socket", "state_dir", "namespace", "docker_host")
#: The schemes of Docker's API addresses.
URL_SCHEMES = ("unix", "tcp", "http", "https", "ssh", "npipe")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DRIVER_SPEC = re.compile(rf"^(?:[A-Za-z0-9_.-]+|{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*)$")


def _fail(flag: str, value: object, why: str) -> pytest.UsageError:
    return pytest.UsageError(f"{flag}={value}: {why}")


def check_max_schedules(value: str, most: int) -> int:
    """``--sandbox-max-schedules``: a whole number, 1 to ``most``."""
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise _fail("--sandbox-max-schedules", value, f"give a whole number of schedules, 1 to "
                    f"{most} (above it, exhaustive mode plays a sample of that many)")
    return int(text)


def check_driver_spec(value: str) -> None:
    if not _DRIVER_SPEC.match(value):
        raise _fail("--sandbox-driver", value, "give a registered driver name (reference, "
                    "openshell-grpc, ...) or MODULE:FACTORY, such as "
                    "mypackage.adapter:factory (docs/adapters.md)")


def check_factory(factory: Callable, spec: str) -> None:
    """A factory must take one argument, the DriverContext (``os:getcwd`` takes none)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a callable without a signature (some builtins): its call will tell
    try:
        sig.bind(object())
    except TypeError:
        raise _fail("--sandbox-driver", spec, f"{getattr(factory, '__qualname__', factory)}"
                    f"{sig} is not an adapter factory: a factory takes one argument, the "
                    "DriverContext, and returns a DriverAdapter (docs/adapters.md)") from None


def check_url(value: str) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises for a port that is not a number
    except ValueError as exc:
        raise _fail("--sandbox-engine-url", value, f"not a URL ({exc})") from None
    if parts.scheme not in URL_SCHEMES:
        raise _fail("--sandbox-engine-url", value, "use unix:///path/to/socket, "
                    "tcp://HOST:PORT, http(s)://HOST:PORT or ssh://USER@HOST")
    if parts.scheme in ("unix", "npipe"):
        if not parts.path:
            raise _fail("--sandbox-engine-url", value, "give the socket's path, "
                        "unix:///var/run/docker.sock")
    elif not parts.hostname:
        raise _fail("--sandbox-engine-url", value, "no host in it")


#: Driver options that may be 0 seconds (a margin, a quiet period); the others must be above 0.
ZERO_ALLOWED = ("poll_margin", "quiet")


def check_seconds(flag: str, value: str, zero: bool = False) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    low_ok = seconds >= 0 if zero else seconds > 0
    if not (low_ok and seconds <= MAX_SECONDS):  # nan fails this too
        raise _fail(flag, value, f"give a number of seconds {'from 0' if zero else 'above 0'} "
                    f"and at most {MAX_SECONDS:g} (a larger or non-finite one would switch the "
                    "limit off)")
    return seconds


def check_command(value: str) -> None:
    flag = "--sandbox-driver-cmd"
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise _fail(flag, value, f"cannot be split into arguments ({exc}); quote as a shell "
                    "would") from None
    if not argv:
        raise _fail(flag, value, "the command is empty")
    for name in re.findall(r"\{(" + _IDENT + r")\}", value):
        if name not in PLACEHOLDERS:
            near = difflib.get_close_matches(name, PLACEHOLDERS, n=1)
            hint = f" (did you mean {{{near[0]}}}?)" if near else ""
            raise _fail(flag, value, f"unknown placeholder {{{name}}}{hint}; the suite fills "
                        "in " + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    program = argv[0]
    if "{" not in program and shutil.which(program) is None:
        raise _fail(flag, value, f"no program {program!r} (not on PATH, or not an executable "
                    "file)")


def check_socket(value: str) -> None:
    try:
        mode = os.stat(value).st_mode
    except OSError as exc:
        raise _fail("--sandbox-driver-socket", value, f"no such socket ({exc.strerror}); start "
                    "the driver first, or let the suite start it with "
                    "--sandbox-driver-cmd") from None
    if not stat.S_ISSOCK(mode):
        raise _fail("--sandbox-driver-socket", value, "not a Unix socket")


def _writable_folder(folder: Path) -> bool:
    try:
        tempfile.TemporaryDirectory(dir=folder).cleanup()
    except OSError:
        return False
    return True


def check_output_path(flag: str, value: str, base: Path) -> Path:
    """A file the suite writes at the end (``--sandbox-report``, ``--sandbox-html``, ...): not a
    folder, not under a file, in a folder it can write (made when missing)."""
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if path.is_dir():
        raise _fail(flag, value, f"is a folder ({path}); give the path of the file to write")
    if path.exists() and not os.access(path, os.W_OK):
        raise _fail(flag, value, f"{path} exists and cannot be written")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise _fail(flag, value, f"{parent} is a file, not a folder")
    if not _writable_folder(parent):
        raise _fail(flag, value, f"cannot write in {parent}")
    return Path(value)  # as given: the summary prints it so


def check_state_dir(value: str, base: Path) -> Path:
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if path.exists() and not path.is_dir():
        raise _fail("--sandbox-state-dir", value, f"{path} is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail("--sandbox-state-dir", value, f"cannot make the folder "
                    f"({exc.strerror or exc})") from None
    if not _writable_folder(path):
        raise _fail("--sandbox-state-dir", value, f"cannot make the runs' state folders in "
                    f"{path}")
    return path


#: The most schedules of one item played at once (each one a driver, and for openshell-grpc a
#: process and a gate).
MAX_CONCURRENCY = 64
#: The most shards a run may be cut into.
MAX_SHARDS = 1000


def check_concurrency(value: str) -> int | None:
    """``--sandbox-concurrency``: ``auto`` (None) or a whole number from 1 to
    :data:`MAX_CONCURRENCY`."""
    text = str(value).strip()
    if text == "auto":
        return None
    if not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= MAX_CONCURRENCY:
        raise _fail("--sandbox-concurrency", value, f"use auto or a whole number from 1 to "
                    f"{MAX_CONCURRENCY} (schedules of one item played at once)")
    return int(text)


def check_shard(value: str) -> tuple[int, int]:
    """``--sandbox-shard=K/N``: part K (1-based) of N."""
    m = re.fullmatch(r"([0-9]+)/([0-9]+)", str(value).strip())
    if not m:
        raise _fail("--sandbox-shard", value, "use K/N: run part K of N (1 <= K <= N), e.g. 1/2")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= MAX_SHARDS:
        raise _fail("--sandbox-shard", value, f"N must be 1 to {MAX_SHARDS}")
    if not 1 <= k <= n:
        raise _fail("--sandbox-shard", value, f"K must be 1 to N ({n}): parts count from 1")
    return k, n
