"""A seeded fuzz corpus of malformed scenario files, and what the suite does with each.

The corpus (:func:`corpus`) is hundreds of files made from the catalog's: fields dropped,
duplicated, retyped or renamed, wrong types, huge and non-finite numbers, unicode, story edits
(steps dropped, duplicated, swapped, moved, retargeted, turned into another action, random steps
added), expectation and schedule edits, text edits (truncated, lines dropped, duplicated or
re-indented, stray characters, bad bytes), plus hand-written classes (:data:`HANDWRITTEN`: alias
bombs, recursive aliases, deep nesting, huge files, every "lints clean but crashes" case the
issue lists). Each file is judged (:func:`judge`) in a worker process under a memory limit
(``RLIMIT_AS``, and its resident memory reported) and a time limit per file:

* ``error``: the loader (or lint's exploration bound) refuses it with errors of ours, each naming
  the file and a line (or, for a whole-file problem, the file);
* ``pass``: lint accepts it and every pinned schedule of every scenario in it plays against the
  reference driver on the fake engine without a failure;
* ``skipped``: lint accepts it but it needs what the fake engine lacks (``live``);
* anything else is a defect: ``traceback`` (an exception that is not ours, a worker killed by the
  memory limit), ``hang`` (over the time limit), ``unclear`` (an error without file or line),
  ``story-missed`` (a story lint accepted that the engine refuses, or that fails a contract check
  on the reference driver), ``false-failure`` (a run of a file lint accepted fails against the
  reference driver).

The test asserts no defect. ``python tests/test_fuzz_corpus.py [N]`` prints the figures
(``docs/reliability.md``); ``SANDBOX_FUZZ_FILES=N`` makes the test try N generated files.
"""

from __future__ import annotations

import copy
import json
import os
import random
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "scenarios"
SEED = 20260611
#: Generated files the test tries (the hand-written ones come on top).
DEFAULT_FILES = int(os.environ.get("SANDBOX_FUZZ_FILES", "400"))
#: A worker's address-space limit: a file that would need more is a defect (it used to take
#: gigabytes for an alias bomb).
MEMORY_LIMIT = 2 * 1024 ** 3
#: The longest one file may take (load, lint and every pinned schedule): more is a hang.
FILE_TIMEOUT = 60.0
#: The most resident memory a worker may reach over its files, in MiB (one starts near 60).
RSS_MIB = 400
WORKERS = 2

# -- the corpus -------------------------------------------------------------------------------------


def _bomb(levels: int, width: int = 9) -> str:
    out = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        out.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(out) + "\n"


_BASE = """\
id: hand-{n}
title: hand-written {n}
requirements: [OWN-4]
sandboxes:
  s1: {{name: box}}
story:
{story}
expect:
{expect}
"""


def _story(*steps: str, expect: str = "  {}") -> str:
    body = "\n".join("  - " + s.replace("\n", "\n    ") for s in steps)
    return _BASE.format(n="{n}", story=body, expect=expect)


_LONG = ["create: s1\nas: A"] + ["stop: A", "start: A"] * 6

#: Hand-written files: (name, text or bytes). Each is a class of mistake seen from outside.
HANDWRITTEN: list[tuple[str, str | bytes]] = [
    ("alias-bomb", _bomb(9)),
    ("alias-bomb-wide", _bomb(5, 60)),
    ("alias-bomb-in-scenario", _story("create: s1\nas: A").replace(
        "title: hand-written {n}", "title: x\ndescription: &d [a, b]\n" + "x: &x [*d, *d]\n")),
    ("recursive-alias", "id: &a [*a]\n"),
    ("recursive-alias-mapping", "a: &a {b: *a}\n"),
    ("undefined-alias", "id: *nothing\n"),
    ("duplicate-anchor", "a: &x 1\nb: &x 2\n"),
    ("nested-1000-brackets", "id: " + "[" * 1000 + "]" * 1000 + "\n"),
    ("nested-100000-braces", "{a: " * 100000 + "1" + "}" * 100000 + "\n"),
    ("nested-block", "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n"),
    ("huge-file", "# " + "x" * (5 * 1024 * 1024) + "\n"),
    ("many-values", "story: [" + ", ".join(["1"] * 250_000) + "]\n"),
    ("many-documents", "---\n{}\n" * 3000),
    ("empty", ""),
    ("only-comments", "# nothing here\n"),
    ("only-separator", "---\n...\n"),
    ("binary", bytes(range(256)) * 4),
    ("not-utf8", "id: caf\xe9\n".encode("latin-1")),
    ("utf16", "id: x\ntitle: y\n".encode("utf-16")),
    ("bom", "\ufeff" + _story("create: s1\nas: A")),
    ("nul", "id: a\x00b\n"),
    ("python-tag", "id: !!python/object/apply:os.system ['echo owned']\n"),
    ("python-name", "id: !!python/name:os.getcwd\n"),
    ("binary-tag", "id: !!binary 'not base64 at all!'\n"),
    ("custom-tag", "id: !mine x\n"),
    ("bad-date", "id: 2001-13-45\n"),
    ("huge-int", "id: " + "9" * 5000 + "\n"),
    ("complex-key", "? [a, b]\n: 1\n"),
    ("merge-key", "base: &b {name: box}\nsandboxes:\n  s1: {<<: *b}\n"),
    ("tabs", "id: x\n\ttitle: y\n"),
    ("list-top", "- 1\n- 2\n"),
    ("scalar-top", "just a string\n"),
    ("thirteen-steps-restart-anywhere",
     _story(*_LONG).replace("requirements: [OWN-4]",
                           "requirements: [OWN-4]\nmax_observations: 3\nrestart: anywhere")),
    ("set-state-without-state", _story("create: s1\nas: A", "set_state: A")),
    ("engine-fault-times-huge", _story("create: s1\nas: A", "engine_fault: list\ntimes: "
                                       + str(10 ** 12))),
    ("rename-invalid", _story("create: s1\nas: A", "rename: A\nto: '-bad name'")),
    ("rename-one-letter", _story("create: s1\nas: A", "rename: A\nto: x")),
    ("rename-in-use", _story("create: s1\nas: A", "clone: A\nas: B\nname: copy-1",
                             "rename: A\nto: copy-1")),
    ("step-on-removed", _story("create: s1\nas: A", "remove: A", "stop: A")),
    ("start-paused", _story("create: s1\nas: A", "set_state: A\nstate: paused", "start: A")),
    ("kill-exited", _story("create: s1\nas: A", "stop: A", "kill: A")),
    ("remove-removing", _story("create: s1\nas: A", "set_state: A\nstate: removing",
                               "remove: A")),
    ("warnings-min-above-max", _story("create: s1\nas: A",
                                      expect="  warnings: {ContainerIdentityConflict: "
                                             "{min: 5, max: 1}}")),
    ("unknown-reason", _story("create: s1\nas: A",
                              expect="  sandboxes:\n    s1: {reason: AllGood}")),
    ("reason-against-phase", _story("create: s1\nas: A",
                                    expect="  sandboxes:\n    s1: {phase: Ready, reason: "
                                           "ContainerExited}")),
    ("deleted-without-delete", _story("create: s1\nas: A", expect="  deleted: [s1]")),
    ("delete-never-created", _story("delete: s1")),
    ("delete-before-create", _story("delete: s1", "create: s1\nas: A")),
    ("journal-fault-before-create", _story("journal_fault: write-fail", "create: s1\nas: A")),
    ("journal-crash-before-create", _story("journal_fault: crash\nat: rename",
                                           "create: s1\nas: A")),
    ("engine-fault-create-before-clone", _story("create: s1\nas: A", "engine_fault: create",
                                                "clone: A\nas: B\nname: copy-1")),
    ("engine-fault-remove-before-remove", _story("create: s1\nas: A", "engine_fault: remove",
                                                 "remove: A")),
    ("engine-fault-list-before-delete", _story("create: s1\nas: A", "engine_fault: list",
                                               "delete: s1")),
    ("corrupt-before-create", _story("journal_fault: corrupt\nsandbox: s1",
                                     "create: s1\nas: A")),
    ("pinned-gap-out-of-range", _story("create: s1\nas: A") + "schedules:\n  s:\n    after: "
                                                              "{99: [observe]}\n"),
    ("pinned-gap-zero", _story("create: s1\nas: A") + "schedules:\n  s:\n    after: "
                                                      "{0: [observe]}\n"),
    ("pinned-many-tokens", _story("create: s1\nas: A") + "schedules:\n  s:\n    after: {1: ["
                           + ", ".join(["observe"] * 5000) + "]}\n"),
    ("clone-canonical-held", _story("create: s1\nas: A", "clone: A\nas: B")),
    ("run-before-create", _story("run: s1\nas: R\nname: box-copy", "create: s1\nas: A")),
    ("containers-wrong", _story("create: s1\nas: A", "remove: A", expect="  containers: [A]")),
    ("containers-unnamed", _story("create: s1", expect="  containers: []")),
    ("tracked-after-delete", _story("create: s1\nas: A", "delete: s1",
                                    expect="  sandboxes:\n    s1: {tracked: true}")),
    ("instance-null", _story("create: s1\nas: A",
                             expect="  sandboxes:\n    s1: {instance: null}")),
    ("expect-removed-wrong", _story("create: s1\nas: A", "remove: A",
                                    "delete: s1\nexpect_removed: true")),
    ("supervisor-before-create", _story("supervisor: s1", "create: s1\nas: A")),
    ("times-on-crash", _story("create: s1\nas: A", "journal_fault: crash\nat: rename\ntimes: 3")),
    ("write-fail-and-crash", _story("create: s1\nas: A", "journal_fault: write-fail\ntimes: 2",
                                    "journal_fault: crash\nat: fsync-dir",
                                    "clone: A\nas: B\nname: box-b")),
    ("story-of-5000-steps", _story("create: s1\nas: A", *(["observe: newest"] * 5000))),
]


def _catalog_documents() -> list[tuple[str, list]]:
    out = []
    for path in sorted(CATALOG.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        out.append((path.name, [d for d in yaml.safe_load_all(text) if d is not None]))
    return out


ODD_VALUES = [None, True, False, 0, -1, 1, 3, 10 ** 12, 2 ** 63, -(10 ** 30), 1e308, 1.5,
              float("inf"), float("-inf"), float("nan"), "", " ", "x", "canonical", "backup", "A",
              "B", "s1", "s2", "OWN-99", "OWN-4", "newest", "restart", "1-n.0", [], [1], ["A"],
              {}, {"a": 1}, {"min": 3, "max": 1}, "é✓🚀", "\u202etxet", "ｆｕｌｌ",
              "a" * 5000, "two words", "-dash", "UPPER", "a/b", "box_copy.1"]
RANDOM_STEPS = [
    {"stop": "A"}, {"start": "A"}, {"kill": "A"}, {"remove": "A"}, {"remove": "B"},
    {"rename": "A", "to": "canonical"}, {"rename": "A", "to": "backup"},
    {"rename": "B", "to": "box-copy"}, {"rename": "A", "to": "x y"},
    {"set_state": "A", "state": "removing"}, {"set_state": "A", "state": "paused"},
    {"set_state": "B", "state": "dead"}, {"set_state": "A"},
    {"clone": "A", "as": "Z", "name": "box-copy"}, {"clone": "A", "as": "Z"},
    {"clone": "B", "as": "Y", "name": "canonical", "generation": "wrong"},
    {"run": "s1", "as": "R", "name": "box-run"}, {"run": "s1", "as": "R"},
    {"run": "s2", "as": "R", "namespace": "other", "name": "elsewhere"},
    {"create": "s1", "as": "N"}, {"create": "s2"}, {"delete": "s1"},
    {"delete": "s1", "expect_removed": True}, {"restart": True}, {"observe": "oldest"},
    {"observe": "newest"}, {"supervisor": "s1"}, {"supervisor": "s1", "connected": False},
    {"engine_fault": "list", "times": 3}, {"engine_fault": "create"},
    {"engine_fault": "remove", "times": 10 ** 12}, {"journal_fault": "write-fail", "times": 2},
    {"journal_fault": "crash", "at": "fsync-dir"}, {"journal_fault": "corrupt", "sandbox": "s1"},
    {"journal_fault": "corrupt"},
]
ACTIONS = ["create", "delete", "restart", "observe", "supervisor", "stop", "start", "kill",
           "remove", "rename", "set_state", "clone", "run", "engine_fault", "journal_fault",
           "bogus"]
REASONS = ["ContainerRunning", "ContainerExited", "ContainerIdentityConflict",
           "ContainerInstanceMissing", "ContainerReplacementPending", "Nope", "DependenciesNotReady"]


def _paths(node, base=()):
    yield base
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, base + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, base + (i,))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def _mutate(rng: random.Random, doc: dict) -> str:
    """Apply one random change to ``doc`` in place; return its name."""
    paths = [p for p in _paths(doc) if p]
    op = rng.choice(["drop", "drop", "duplicate", "retype", "retype", "huge", "unicode",
                     "rename-key", "story", "story", "story", "story", "story", "story", "expect",
                     "expect", "schedule"])
    if op in ("drop", "retype", "huge", "unicode", "rename-key", "duplicate") and paths:
        path = rng.choice(paths)
        parent, last = _get(doc, path[:-1]), path[-1]
        if op == "drop":
            del parent[last]
        elif op == "duplicate":
            value = _get(doc, path)
            if isinstance(value, list) and value:
                value.insert(rng.randrange(len(value) + 1), copy.deepcopy(rng.choice(value)))
            elif isinstance(parent, list):
                parent.insert(last, copy.deepcopy(parent[last]))
            else:
                parent[f"{last}"] = copy.deepcopy(parent[last])
        elif op == "retype":
            parent[last] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif op == "huge":
            parent[last] = rng.choice([10 ** 12, 2 ** 64, -5, 0, 10 ** 400, 1e308, float("nan")])
        elif op == "unicode":
            parent[last] = str(parent[last]) + rng.choice(["\u0301", "🚀", "\u200b", "\u202e",
                                                            "ß", "\x85", "\ud7ff"])
        elif op == "rename-key" and isinstance(parent, dict):
            value = parent.pop(last)
            parent[rng.choice([f"{last}s", str(last).upper(), f"{last}\u200b", "extra",
                               f" {last}"])] = value
        return op
    if op == "story" and isinstance(doc.get("story"), list) and doc["story"]:
        return _story_edit(rng, doc["story"], doc)
    if op == "expect" and isinstance(doc.get("expect"), dict):
        return _expect_edit(rng, doc)
    if op == "schedule":
        sched = doc.setdefault("schedules", {}) if isinstance(doc.get("schedules", {}), dict) \
            else {}
        name = rng.choice(list(sched) or ["fuzz"])
        entry = sched.setdefault(name, {}) if isinstance(sched.get(name, {}), dict) else {}
        after = entry.setdefault("after", {}) if isinstance(entry.get("after", {}), dict) else {}
        ref = rng.choice([0, -1, 99, 1, 2, "A", "B", "nolabel", True, 1.5, "2"])
        after[ref] = rng.choice([["observe"], ["restart", "oldest"], ["sideways"], [],
                                 ["observe"] * 30, "observe", None])
        return "schedule"
    return "none"


def _story_edit(rng: random.Random, story: list, doc: dict) -> str:
    kind = rng.choice(["delete", "duplicate", "swap", "move", "retarget", "action", "add",
                       "add", "field"])
    i = rng.randrange(len(story))
    if kind == "delete":
        del story[i]
    elif kind == "duplicate":
        story.insert(i, copy.deepcopy(story[i]))
    elif kind == "swap" and len(story) > 1:
        j = rng.randrange(len(story))
        story[i], story[j] = story[j], story[i]
    elif kind == "move":
        step = story.pop(i)
        story.insert(rng.randrange(len(story) + 1), step)
    elif kind == "retarget" and isinstance(story[i], dict):
        action = next((k for k in story[i] if k in ACTIONS), None)
        if action:
            story[i][action] = rng.choice(["A", "B", "C", "s1", "s2", "X", True, "newest",
                                           "list", "crash"])
    elif kind == "action" and isinstance(story[i], dict):
        action = next((k for k in story[i] if k in ACTIONS), None)
        if action:
            story[i][rng.choice(ACTIONS)] = story[i].pop(action)
    elif kind == "add":
        story.insert(rng.randrange(len(story) + 1), copy.deepcopy(rng.choice(RANDOM_STEPS)))
    elif kind == "field" and isinstance(story[i], dict):
        story[i][rng.choice(["as", "to", "name", "times", "state", "at", "sandbox",
                             "generation", "gpu", "namespace", "expect_removed", "connected",
                             "label"])] = copy.deepcopy(rng.choice(ODD_VALUES))
    return "story-" + kind


def _expect_edit(rng: random.Random, doc: dict) -> str:
    expect = doc["expect"]
    kind = rng.choice(["tracked", "instance", "containers", "deleted", "reason", "warnings",
                       "phase"])
    sandboxes = expect.setdefault("sandboxes", {}) if isinstance(expect.get("sandboxes", {}),
                                                                 dict) else {}
    key = rng.choice(list(sandboxes) or ["s1"])
    entry = sandboxes.setdefault(key, {}) if isinstance(sandboxes.get(key, {}), dict) else {}
    if kind == "tracked":
        entry["tracked"] = rng.choice([True, False])
    elif kind == "instance":
        entry["instance"] = rng.choice(["A", "B", "C", "U", None, "Q"])
    elif kind == "phase":
        entry["phase"] = rng.choice(["Ready", "Error", "Provisioning", "Broken"])
    elif kind == "reason":
        entry["reason"] = rng.choice(REASONS)
    elif kind == "containers":
        expect["containers"] = rng.choice([[], ["A"], ["B"], ["A", "B"], ["A", "A"], ["Q"]])
    elif kind == "deleted":
        expect["deleted"] = rng.choice([["s1"], ["s2"], [], ["s1", "s1"]])
    elif kind == "warnings":
        expect["warnings"] = {rng.choice(["SandboxInstanceReplaced", "ContainerIdentityConflict",
                                          "Bogus"]): rng.choice([0, 1, 5, {"min": 4, "max": 2},
                                                                 {"max": 0}, -1])}
    return "expect-" + kind


def _text_edit(rng: random.Random, text: str) -> tuple[str, str | bytes]:
    lines = text.splitlines(keepends=True)
    kind = rng.choice(["truncate", "drop-line", "dup-line", "swap-lines", "indent", "char",
                       "char", "bytes"])
    if kind == "truncate":
        return kind, text[:rng.randrange(len(text))]
    i = rng.randrange(len(lines))
    if kind == "drop-line":
        del lines[i]
    elif kind == "dup-line":
        lines.insert(i, lines[i])
    elif kind == "swap-lines":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "indent":
        lines[i] = rng.choice(["  ", " ", "\t", ""]) + lines[i].lstrip(" ")
    elif kind == "char":
        pos = rng.randrange(len(text) + 1)
        return kind, text[:pos] + rng.choice(":-[]{}&*!\"'%@`|>#,?\t\\") + text[pos:]
    elif kind == "bytes":
        data = text.encode()
        pos = rng.randrange(len(data) + 1)
        return kind, data[:pos] + rng.choice([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"]) \
            + data[pos:]
    return kind, "".join(lines)


def corpus(n: int = DEFAULT_FILES, seed: int = SEED) -> list[tuple[str, str | bytes]]:
    """``(name, content)`` of every file: the hand-written ones, then ``n`` generated ones."""
    rng = random.Random(seed)
    catalog = _catalog_documents()
    raw = {name: (CATALOG / name).read_text(encoding="utf-8") for name, _ in catalog}
    out: list[tuple[str, str | bytes]] = [(f"hand-{i:03d}-{name}",
                                           text.replace("{n}", str(i)) if isinstance(text, str)
                                           else text)
                                          for i, (name, text) in enumerate(HANDWRITTEN)]
    for i in range(n):
        fname, docs = rng.choice(catalog)
        if rng.random() < 0.2:
            kind, content = _text_edit(rng, raw[fname])
            out.append((f"gen-{i:04d}-{fname[:-5]}-text-{kind}", content))
            continue
        docs = copy.deepcopy(docs)
        j = rng.randrange(len(docs))
        ops = [_mutate(rng, docs[j]) for _ in range(rng.choice([1, 1, 2, 3]))]
        try:
            content = yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError:
            content = yaml.safe_dump_all(docs, sort_keys=False)
        out.append((f"gen-{i:04d}-{fname[:-5]}-{'+'.join(ops)}", content))
    return out


# -- judging one file (in a worker process) ------------------------------------------------------------

def _clear(errors, path: Path) -> list[str]:
    """The errors among ``errors`` that are not clear: not naming this file, with no line (and
    no whole-file problem), or confessing a bug of the suite."""
    return [str(e) for e in errors
            if e.path != str(path) or not e.message or "please report it" in e.message
            or (e.line is None and not e.message.startswith(WHOLE_FILE))]


def _stage(path: Path) -> str:
    """Which stage refuses a file the loader refuses: ``load`` (YAML, schema, names) or
    ``story`` (the story's meaning, ``scenario/meaning.py``)."""
    from pytest_sandbox_conformance.scenario import ScenarioErrors, load_text

    try:
        load_text(path.read_text(encoding="utf-8"), str(path), story=False)
    except (ScenarioErrors, OSError, UnicodeDecodeError):
        return "load"
    return "story"


def judge(path: Path) -> dict:
    """What the suite does with one file: load it as collection does (its memory measured), lint
    it as ``sandbox-conformance lint`` does, and play every pinned schedule of what lint accepts
    against the reference driver on the fake engine, as the plugin's items do."""
    from pytest_sandbox_conformance.adapters.reference import factory
    from pytest_sandbox_conformance.cli import lint_paths
    from pytest_sandbox_conformance.engines.fake import FakeEngine
    from pytest_sandbox_conformance.exploration.schedule import pinned
    from pytest_sandbox_conformance.run.failure import ConformanceFailure, StoryError
    from pytest_sandbox_conformance.run.rehearsal import UNPLAYABLE_NEEDS
    from pytest_sandbox_conformance.run.runner import RunConfig, play
    from pytest_sandbox_conformance.scenario import ScenarioErrors, load_file

    started = time.perf_counter()
    try:
        load_file(path)
        loaded = True
    except ScenarioErrors as exc:
        loaded = False
        errors = exc.errors
    except Exception as exc:  # noqa: BLE001 -- every other exception is the defect counted
        return {"outcome": "traceback", "detail": f"load: {type(exc).__name__}: {exc}"[:500]}
    timing = {"load_s": time.perf_counter() - started}
    if not loaded:
        unclear = _clear(errors, path)
        return {"outcome": "unclear" if unclear else "error", "stage": _stage(path),
                "detail": (unclear or [str(errors[0])])[0], **timing}
    _, scenarios, errors = lint_paths([str(path)])
    if errors:
        missed = [str(e) for e in errors if "lint's reading of the story missed" in e.message]
        if missed:
            return {"outcome": "story-missed", "detail": missed[0][:600], **timing}
        unclear = _clear(errors, path)
        contract = all(e.message.startswith("under schedule") for e in errors)
        return {"outcome": "unclear" if unclear else "error",
                "stage": "contract" if contract else "lint",
                "detail": (unclear or [str(errors[0])])[0], **timing}
    state = Path(tempfile.mkdtemp(prefix="sbx-fuzz-", dir="/dev/shm" if os.access(
        "/dev/shm", os.W_OK) else None))
    cfg = RunConfig(driver=factory, engine=FakeEngine, state_root=state)
    played = 0
    try:
        for sc in scenarios:
            if sc.needs & UNPLAYABLE_NEEDS:
                continue
            for sched in pinned(sc):
                played += 1
                try:
                    play(sc, sched, cfg)
                except ConformanceFailure as exc:
                    return {"outcome": "false-failure", "detail": f"{sc.id}[{sched.label}]: "
                            + "; ".join(f"{f.check}: {f.message}" for f in exc.failures)[:600]}
                except StoryError as exc:  # the engine refused a step lint accepted
                    return {"outcome": "story-missed", "detail": str(exc)[:600]}
                except Exception as exc:  # noqa: BLE001
                    return {"outcome": "traceback", "detail": f"{sc.id}[{sched.label}]: "
                            f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        import shutil

        shutil.rmtree(state, ignore_errors=True)
    return {"outcome": "pass" if played else "skipped",
            "run_s": time.perf_counter() - started, **timing}


#: Messages of errors about a whole file (no line to name).
WHOLE_FILE = ("cannot read the file", "the file holds no scenario", "the file is larger than")


def _worker() -> None:
    """Judge the files whose paths arrive on stdin, one JSON line each on stdout."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    sys.path.insert(0, str(ROOT))
    for line in sys.stdin:
        path = Path(line.strip())
        try:
            result = judge(path)
        except MemoryError:
            result = {"outcome": "traceback", "detail": "MemoryError"}
        # The worker's peak resident memory so far: a file that needs much shows as a step up.
        result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


# -- running the corpus ---------------------------------------------------------------------------------


def _spawn() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                            text=True, bufsize=1)


def _run_queue(files: list[Path], results: dict[Path, dict]) -> None:
    proc = _spawn()
    for path in files:
        started = time.perf_counter()
        proc.stdin.write(f"{path}\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], FILE_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        if not line:
            hung = not ready
            _stop(proc)
            results[path] = {"outcome": "hang" if hung else "traceback",
                             "detail": f"no answer within {FILE_TIMEOUT} s" if hung
                             else f"the worker died (exit {proc.returncode}): memory limit?"}
            proc = _spawn()
            continue
        result = json.loads(line)
        result["wall_s"] = time.perf_counter() - started
        results[path] = result
    _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """End a worker and close its pipes (closing stdin ends one that is waiting for a file)."""
    for pipe in (proc.stdin, proc.stdout):
        try:
            pipe.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def evaluate(n: int = DEFAULT_FILES, seed: int = SEED) -> tuple[dict[str, dict], float]:
    """Write the corpus into a temporary folder, judge every file; ``({name: result}, seconds)``."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sbx-fuzz-corpus-") as tmp:
        paths = {}
        for name, content in corpus(n, seed):
            p = Path(tmp) / f"{name[:80]}.yaml"
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8", errors="surrogatepass")
            paths[p] = name
        queues = [list(paths)[i::WORKERS] for i in range(WORKERS)]
        results: dict[Path, dict] = {}
        threads = [threading.Thread(target=_run_queue, args=(q, results)) for q in queues]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {paths[p]: r for p, r in results.items()}, time.perf_counter() - started


DEFECTS = ("traceback", "hang", "unclear", "story-missed", "false-failure")


def figures(results: dict[str, dict], seconds: float) -> str:
    counts = Counter(r["outcome"] for r in results.values())
    peaks = [r["rss_mib"] for r in results.values() if "rss_mib" in r]
    walls = [r["wall_s"] for r in results.values() if "wall_s" in r]
    stages = Counter(r.get("stage") for r in results.values() if r["outcome"] == "error")
    lines = [f"files tried: {len(results)} ({len(HANDWRITTEN)} hand-written)",
             f"clear errors: {counts['error']} (YAML, schema and names: {stages['load']}; the "
             f"story's meaning: {stages['story']}; the exploration bound: {stages['lint']}; "
             f"expectations the contract does not meet, found by rehearsing the pinned "
             f"schedules: {stages['contract']})",
             f"runs without failure: {counts['pass']} (skipped, needing a live engine: "
             f"{counts['skipped']})",
             f"tracebacks: {counts['traceback']}", f"hangs: {counts['hang']}",
             f"unclear errors: {counts['unclear']}",
             f"stories lint's symbolic run let through that fail a contract check: "
             f"{counts['story-missed']}",
             f"false failures (lint accepted, the run failed): {counts['false-failure']}",
             f"slowest file: {max(walls, default=0):.2f} s; a worker's largest resident memory: "
             f"{max(peaks, default=0):.0f} MiB; total {seconds:.1f} s on {WORKERS} workers"]
    slow = sorted(results.items(), key=lambda kv: -kv[1].get("wall_s", 0))[:3]
    lines.append("slowest: " + ", ".join(f"{name} ({r.get('wall_s', 0):.2f} s, {r['outcome']})"
                                         for name, r in slow))
    for name, r in sorted(results.items()):
        if r["outcome"] in DEFECTS:
            lines.append(f"  {r['outcome']}: {name}: {r.get('detail', '')}")
    return "\n".join(lines)


def test_every_malformed_file_gets_a_clear_error_or_runs_without_failure():
    results, seconds = evaluate()
    report = figures(results, seconds)
    print(report)
    defects = {name: r for name, r in results.items() if r["outcome"] in DEFECTS}
    assert not defects, report
    assert max(r.get("rss_mib", 0) for r in results.values()) < RSS_MIB, report
    counts = Counter(r["outcome"] for r in results.values())
    # The corpus exercises both sides: files refused and files that run.
    assert counts["error"] >= len(results) // 4 and counts["pass"] >= len(results) // 10, report


def test_the_corpus_is_seeded_and_holds_every_class():
    first, again = corpus(60), corpus(60)
    assert first == again
    assert corpus(60, seed=1) != first
    names = " ".join(name for name, _ in corpus(400))
    for kind in ("hand-", "-text-", "story-", "expect-", "retype", "drop", "schedule"):
        assert kind in names, kind


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker()
    else:
        res, secs = evaluate(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FILES)
        print(figures(res, secs))
