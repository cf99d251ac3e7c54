"""The state-folder audit (OWN-15): the driver's durable state is owner-only, and stays in its
folder.

The runner gives every play a folder of its own (``sbx-state-XXXX``, mode 0700) and the driver
the folder ``state`` inside it (``DriverContext.state_dir``). An adapter that declares
``state_folder`` (the reference adapter: the state folder itself; ``openshell-grpc`` with a
``--sandbox-driver-cmd`` that uses ``{state_dir}``: the folder it passes) says the driver keeps
its durable state there. After every story step and observation the runner audits it:

* every file under the folder has no group or other permission bits (OWN-15: "file mode 0600"),
  every folder none either ("folder mode 0700"), the folder itself included; an owner-only mode
  stricter than those (0400, 0500) is owner-only too;
* nothing appeared outside the folder: each folder between the play's own folder and the driver's
  holds exactly the next one down (a lock file beside the state folder, a temporary file written
  next to it, are writes outside the driver's folder);
* for an in-process driver whose fsyncs the suite watches (``adapters/durability.py``), no file
  was renamed into the folder from outside it (the journal's temporary file must live beside the
  journal: OWN-15's atomic write is a rename on one filesystem).

Symbolic links are reported, not followed. Reads the filesystem; no pytest, no engine.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Sequence

__all__ = ["audit_state_folder"]


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


@functools.lru_cache(maxsize=256)
def _realpath(path: str) -> str:
    """The real path of a play's own folder (``run_dir``: the suite made it, and nothing of the
    driver's may replace it), worked out once per play."""
    return os.path.realpath(path)


def _below(run_dir: Path, folder: Path) -> list[str] | None:
    """The names from ``run_dir`` down to ``folder``, resolved (symbolic links followed), or
    None when ``folder`` is not inside ``run_dir``. Where ``folder`` is written as a plain path
    under ``run_dir`` (no ``.`` or ``..``) and no link lies on the way (the usual case: a few
    ``lstat`` calls), the names are ``folder``'s own; otherwise ``os.path.realpath`` decides."""
    start, top = os.fspath(run_dir).rstrip(os.sep), os.fspath(folder)
    names = top[len(start):].split(os.sep)[1:] if top.startswith(start + os.sep) else None
    if top == start:
        return []
    if names is not None and all(n not in ("", os.curdir, os.pardir) for n in names):
        here = start
        for name in names:
            here = os.path.join(here, name)
            if os.path.islink(here):
                break
        else:
            return names
    real, base = os.path.realpath(top), _realpath(start)
    if real == base:
        return []
    # a folder the suite does not own: only its own content is audited
    return real[len(base) + 1:].split(os.sep) if real.startswith(base + os.sep) else None


def audit_state_folder(run_dir: Path, folder: Path, foreign: Sequence[str] = ()) -> list[str]:
    """What breaks OWN-15 in ``folder`` (the driver's) and around it up to ``run_dir``.

    Runs after every story step and observation, so it works on path strings (``os.path``), not
    ``pathlib`` objects: a quarter of a play's time went into ``Path.resolve`` and the path
    objects of the walk."""
    problems: list[str] = []
    parts = _below(run_dir, folder)
    if parts is not None:
        here = run_dir
        for part in parts:
            try:
                extra = sorted(n for n in os.listdir(here) if n != part)
            except OSError:
                break
            for name in extra:
                problems.append(f"{name!r} was written beside the driver's state folder, in "
                                f"{here}: a driver keeps its state inside its folder")
            here = here / part
    top = os.fspath(folder)
    if not os.path.exists(top):
        return problems
    paths = [top]
    for dirpath, dirnames, filenames in os.walk(top):
        paths += [os.path.join(dirpath, name) for name in sorted(dirnames) + sorted(filenames)]
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # removed meanwhile
        if not stat.S_ISLNK(st.st_mode) and not stat.S_IMODE(st.st_mode) & 0o077:
            continue  # owner-only: the usual case, with nothing to say
        shown = "the state folder" if path == top else \
            f"{os.path.relpath(path, top)} in the state folder"
        if stat.S_ISLNK(st.st_mode):
            problems.append(f"{shown} is a symbolic link ({os.readlink(path)!r}): the "
                            "journal is a file of the owner-only folder")
        elif stat.S_IMODE(st.st_mode) & 0o077:
            kind, want = ("folder", "0700") if stat.S_ISDIR(st.st_mode) else ("file", "0600")
            problems.append(f"{shown} has mode {_mode(st)}: a journal {kind} is owner-only "
                            f"(mode {want})")
    for line in foreign:
        problems.append(f"a file was renamed into the state folder from outside it ({line}): "
                        "the journal's temporary file lives beside the journal")
    return problems
