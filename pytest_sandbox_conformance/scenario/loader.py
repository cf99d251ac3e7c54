"""Load scenario files: YAML (``yamlsource.py``, bounded) -> JSON Schema (``validate.py``) ->
names -> the story's meaning (``meaning.py``) -> :class:`Scenario`.

Every problem becomes a :class:`ScenarioError` naming the file, the line and the field; a file
with several problems reports all of them (:class:`ScenarioErrors`). No I/O beyond reading the
file; no pytest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

from .errors import ScenarioError, ScenarioErrors
from .meaning import check_meaning
from .model import Count, Expect, PinnedSchedule, SandboxDecl, SandboxExpect, Scenario, Step
from .schema import CAPABILITIES, EXTERNAL_ACTIONS, FOREIGN_JOURNALS, MARKS, STEP_SCHEMAS
from .validate import schema_errors
from .yamlsource import MAX_BYTES, Lines, dotted, load_documents

__all__ = ["DEFAULT_SCHEDULE", "internal_error", "load_file", "load_paths", "load_text"]

#: The schedule a scenario without pinned schedules runs: one observation after every step.
DEFAULT_SCHEDULE = "every-step"


def load_file(path: str | Path) -> list[Scenario]:
    path = Path(path)

    def fail(line: int | None, message: str) -> ScenarioErrors:
        return ScenarioErrors([ScenarioError(str(path), line, "", message)])

    try:
        if path.stat().st_size > MAX_BYTES:
            raise fail(None, f"the file is larger than {MAX_BYTES} bytes (the limit of a "
                             "scenario file)")
        data = path.read_bytes()
    except OSError as exc:
        raise fail(None, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(data.count(b"\n", 0, exc.start) + 1,
                   f"cannot read the file: it is not UTF-8 (byte {data[exc.start]:#04x} at "
                   f"offset {exc.start}: {exc.reason})") from None
    return _parsed(text, str(path))


#: Parsed files: ``(path, digest of the text) -> scenarios or the errors``. Each file is parsed
#: once per process (an xdist worker, in-process pytester runs) and again only when its text
#: changes (keyed by content, not mtime: a file rewritten within the clock's tick is seen).
#: Scenarios are frozen, so sharing them is safe.
_PARSED: dict[tuple[str, bytes], list[Scenario] | ScenarioErrors] = {}


def _parsed(text: str, source: str) -> list[Scenario]:
    key = (source, hashlib.blake2b(text.encode("utf-8", "surrogatepass"),
                                   digest_size=16).digest())
    found = _PARSED.get(key)
    if found is None:
        try:
            found = load_text(text, source)
        except ScenarioErrors as exc:
            found = exc
        if len(_PARSED) > 1024:
            _PARSED.clear()
        _PARSED[key] = found
    if isinstance(found, ScenarioErrors):
        raise ScenarioErrors(list(found.errors))
    return list(found)


def load_text(text: str, source: str, story: bool = True) -> list[Scenario]:
    """Every scenario (one per YAML document) in ``text``; raise :class:`ScenarioErrors`.
    ``story=False`` leaves out the story's meaning (``meaning.py``), to tell which stage
    refuses a file."""
    errors: list[ScenarioError] = []
    scenarios: list[Scenario] = []
    try:
        documents = list(load_documents(text, source))
    except ScenarioError as exc:
        raise ScenarioErrors([exc]) from None
    for data, lines in documents:
        if data is None:
            continue
        found: list[ScenarioError] = []
        scenario = _build(data, lines, source, found, story)
        errors.extend(found)
        if scenario is not None and not found:
            scenarios.append(scenario)
    ids = {}
    for s in scenarios:
        if s.id in ids:
            errors.append(ScenarioError(source, s.line, "id",
                                        f"scenario id {s.id!r} is used twice in this file "
                                        f"(also on line {ids[s.id]})"))
        ids[s.id] = s.line
    if errors:
        raise ScenarioErrors(errors)
    if not scenarios:
        raise ScenarioErrors([ScenarioError(source, None, "", "the file holds no scenario")])
    return scenarios


def _build(data: Any, lines: Lines, source: str, out: list[ScenarioError],
           story: bool = True) -> Scenario | None:
    schema_errors(data, "", (), lines, source, out)
    if not isinstance(data, dict):
        return None
    if out:
        # Still report every step's own problems, so one run shows them all.
        story = data.get("story")
        for i, raw in enumerate(story if isinstance(story, list) else ()):
            if isinstance(raw, dict):
                actions = [k for k in raw if k in STEP_SCHEMAS]
                if len(actions) == 1:
                    schema_errors(raw, actions[0], ("story", i), lines, source, out)
        return None

    def err(path: tuple, message: str) -> None:
        out.append(ScenarioError(source, lines.line_of(path), dotted(path), message))

    needs = set(data.get("needs", ()))
    for i, cap in enumerate(data.get("needs", ())):
        if cap not in CAPABILITIES:
            err(("needs", i), f"unknown capability {cap!r}; known: {sorted(CAPABILITIES)}")
    for i, mark in enumerate(data.get("marks", ())):
        if mark not in MARKS:
            err(("marks", i), f"unknown mark {mark!r}; registered marks: {list(MARKS)}")

    sandboxes = {
        key: SandboxDecl(key, decl["name"], bool(decl.get("gpu", False)), decl.get("durable", {}))
        for key, decl in data["sandboxes"].items()
    }

    steps: list[Step] = []
    bound: dict[str, int] = {}   # container name -> step index that binds it
    created: set[str] = set()
    labels: dict[str, int] = {}
    for i, raw in enumerate(data["story"]):
        path = ("story", i)
        actions = [k for k in raw if k in STEP_SCHEMAS]
        if len(actions) != 1:
            err(path, f"a step needs exactly one action key, one of {sorted(STEP_SCHEMAS)}; "
                      f"found {sorted(actions) or 'none'}")
            continue
        action = actions[0]
        before = len(out)
        schema_errors(raw, action, path, lines, source, out)
        if len(out) != before:
            continue
        target = raw[action]
        args = {k: v for k, v in raw.items() if k not in (action, "label")}
        step = Step(i, action, target, args, lines.line_of(path), raw.get("label"))
        if action in ("create", "delete", "supervisor", "run") and target not in sandboxes:
            err(path + (action,), f"unknown sandbox {target!r}; declared: {sorted(sandboxes)}")
        if action == "journal_fault" and raw.get("sandbox") is not None \
                and raw["sandbox"] not in sandboxes:
            err(path + ("sandbox",), f"unknown sandbox {raw['sandbox']!r}")
        if action == "journal_fault" and target in ("corrupt", *FOREIGN_JOURNALS) \
                and "sandbox" not in raw:
            err(path, f"journal_fault: {target} needs a 'sandbox' (whose journal it writes)")
        edits = raw.get("labels") or {}
        if edits.get("sandbox-id") is not None and edits["sandbox-id"] not in sandboxes:
            err(path + ("labels", "sandbox-id"),
                f"unknown sandbox {edits['sandbox-id']!r}: sandbox-id writes the id of a "
                f"declared sandbox; declared: {sorted(sandboxes)}")
        if raw.get("fails") == "start" and "state" in raw:
            err(path + ("state",), "fails: start leaves the container created (the engine "
                                   "refuses to start it); a 'state' cannot be reached")
        if action == "journal_fault" and target == "crash" and "at" not in raw:
            err(path, "journal_fault: crash needs 'at' (the step of the write to crash at)")
        if action == "create":
            if target in created:
                err(path + ("create",), f"sandbox {target!r} is created twice")
            created.add(target)
        if action in EXTERNAL_ACTIONS and action != "run" and target not in bound:
            err(path + (action,), f"unknown container {target!r}; bind it first with 'as:' "
                                  f"(bound so far: {sorted(bound) or 'none'})")
        if action in ("clone", "run"):
            if "as" not in raw:
                err(path, f"{action} needs 'as:' to name the new container")
        name = step.binds
        if name is not None:
            if name in bound:
                err(path + ("as",), f"container name {name!r} is already bound by step "
                                    f"{bound[name] + 1}")
            bound[name] = i
        for lab in (step.label, name):
            if lab is not None:
                if lab in labels and labels[lab] != i:
                    err(path + ("label",), f"step label {lab!r} is used twice")
                labels[lab] = i
        steps.append(step)
        if action == "set_state":
            needs.add("states")
        elif action == "engine_fault":
            needs.add("engine-faults")
        elif action == "journal_fault":
            needs.add("journal-faults")
            if target == "power-loss":
                needs.add("power-loss")
        elif action == "restart":
            needs.add("restart")
        elif action in ("clone", "run") and "gpu" in raw:
            needs.add(f"gpu-{raw['gpu']}")
    if any(s.gpu for s in sandboxes.values()):
        needs |= {"gpu", "gpu-host"}  # the driver's own request must start, whatever its style
    if data.get("restart") == "anywhere":  # written out: a scenario about restarts
        needs.add("restart")

    expect = _expect(data["expect"], ("expect",), bound, sandboxes, lines, err)
    sections = [(("expect",), expect, data["expect"])]
    pinned: list[PinnedSchedule] = []
    for name, sched in sorted(data.get("schedules", {}).items()):
        n_steps = len(data["story"])
        gaps: list[list[str]] = [[] for _ in range(n_steps)]
        for ref, tokens in sched.get("after", {}).items():
            where = ("schedules", name, "after", ref)
            index = _step_ref(ref, labels, n_steps)
            if index is None:
                err(where, f"no step {ref!r}: use a step number (1..{n_steps}), a step "
                           f"label or an 'as:' name; known: {sorted(labels)}")
                continue
            for tok in tokens:
                gaps[index].append("newest" if tok == "observe" else tok)
                if tok == "restart":
                    needs.add("restart")
        merged = expect
        if "expect" in sched:
            override = _expect(sched["expect"], ("schedules", name, "expect"), bound, sandboxes,
                               lines, err)
            sections.append((("schedules", name, "expect"), override, sched["expect"]))
            merged = _merge(expect, override)
        pinned.append(PinnedSchedule(name, tuple(tuple(g) for g in gaps), merged,
                                     lines.line_of(("schedules", name))))
    if out:
        return None
    scenario = Scenario(
        id=data["id"], title=data["title"], path=source, line=lines.line_of(("id",)),
        requirements=tuple(data["requirements"]), profile=data.get("profile", "core"),
        needs=frozenset(needs), marks=tuple(data.get("marks", ())),
        restart=data.get("restart", "anywhere"), max_observations=data.get("max_observations", 3),
        sandboxes=sandboxes, story=tuple(steps), expect=expect, pinned=tuple(pinned),
        description=data.get("description", ""), reaches=tuple(data.get("reaches", ())))
    if story:
        check_meaning(scenario, sections, err)
    return None if out else scenario


def _step_ref(ref: Any, labels: dict[str, int], n: int) -> int | None:
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref - 1 if 1 <= ref <= n else None
    if isinstance(ref, str) and ref.isdigit():
        return _step_ref(int(ref), labels, n)
    return labels.get(ref)


def _expect(raw: dict, path: tuple, bound: dict, sandboxes: dict, lines: Lines, err) -> Expect:
    sbx = {}
    for key, e in raw.get("sandboxes", {}).items():
        if key not in sandboxes:
            err(path + ("sandboxes", key), f"unknown sandbox {key!r}")
            continue
        inst = e.get("instance")
        if inst is not None and inst not in bound:
            err(path + ("sandboxes", key, "instance"), f"unknown container {inst!r}")
        sbx[key] = SandboxExpect(inst, "instance" in e, e.get("phase"), e.get("reason"),
                                 e.get("tracked"))
    containers = raw.get("containers")
    for i, c in enumerate(containers or ()):
        if c not in bound:
            err(path + ("containers", i), f"unknown container {c!r}")
    warnings = {}
    for reason, count in raw.get("warnings", {}).items():
        if isinstance(count, int):
            warnings[reason] = Count(count, count)
        else:
            warnings[reason] = Count(count.get("min", 0), count.get("max"))
    for i, d in enumerate(raw.get("deleted", ())):
        if d not in sandboxes:
            err(path + ("deleted", i), f"unknown sandbox {d!r}")
    return Expect(sbx, tuple(containers) if containers is not None else None, warnings,
                  tuple(raw.get("deleted", ())), lines.line_of(path))


def _merge(base: Expect, override: Expect) -> Expect:
    sandboxes = dict(base.sandboxes)
    sandboxes.update(override.sandboxes)
    warnings = dict(base.warnings)
    warnings.update(override.warnings)
    return Expect(sandboxes,
                  override.containers if override.containers is not None else base.containers,
                  warnings, override.deleted or base.deleted, override.line)


def load_paths(paths: Iterable[Path]) -> tuple[list[Scenario], list[ScenarioError]]:
    """Load many files (sorted); return the scenarios and every error of every file, never
    raising: one bad file never hides the others."""
    scenarios: list[Scenario] = []
    errors: list[ScenarioError] = []
    for p in sorted(paths):
        try:
            scenarios.extend(load_file(p))
        except ScenarioErrors as exc:
            errors.extend(exc.errors)
        except Exception as exc:  # a bug of the loader: still name the file, go on
            errors.append(internal_error(p, exc))
    return scenarios, errors


def internal_error(path: str | Path, exc: BaseException) -> ScenarioError:
    """A loader failure that is no ScenarioError (a bug of the suite): one line naming the file."""
    return ScenarioError(str(path), None, "", f"the loader failed on this file "
                                              f"({type(exc).__name__}: {exc}); this is a bug of "
                                              "pytest-sandbox-conformance, please report it")
