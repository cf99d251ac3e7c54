"""The documentation stays true to the code and to the scenario catalog.

* ``docs/scenarios.md``, section "The catalog": one row per catalog scenario with its file,
  profile, requirements, pinned schedules, exhaustive count and needs, and the per-requirement
  table; nothing else.
* ``docs/contract.md``, section "Scenarios that check it": per requirement, exactly the catalog
  scenarios that list it, by profile.
* ``docs/contract.md``, section "Checks that read it": per requirement, exactly the checks whose
  failures can name it (``run.checks.requirement_checks()``: the registered checks and the
  runner's own); ``docs/scenarios.md``'s checks table has a row for every check.
* Every ``--sandbox-*`` option (``options.OPTIONS``) in README.md's options table and somewhere
  under ``docs/``; every story action, step field and scenario field of the JSON Schema in
  ``docs/scenarios.md``; every capability in ``docs/adapters.md`` or ``docs/scenarios.md``; every
  Warning reason in the contract's Warnings table.

Tables are found by their section heading (numbering such as ``7.`` ignored) and the first
column's header, so prose around them may change freely. A failure says what to add or remove,
where, and for generated tables prints the row as it should read.

``python tests/test_docs.py`` prints the generated tables (the catalog, the two per-requirement
tables); ``python tests/test_docs.py --write`` regenerates them in place (each table, and the
catalog's summary line, replaced where it stands; never appended).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so that ``python tests/test_docs.py`` finds the package
    sys.path.insert(0, str(ROOT))

from pytest_sandbox_conformance.plugin.options import OPTIONS  # noqa: E402
from pytest_sandbox_conformance.scenario.loader import load_paths  # noqa: E402
from pytest_sandbox_conformance.scenario.schema import (  # noqa: E402
    CAPABILITIES,
    SCENARIO_SCHEMA,
    STEP_SCHEMAS,
    WARNING_REASONS,
)
from pytest_sandbox_conformance.exploration.schedule import exhaustive_count, pinned  # noqa: E402
from pytest_sandbox_conformance.run.checks import (  # noqa: E402
    REGISTRY,
    RUNNER_CHECKS,
    requirement_checks,
)

DOCS = ROOT / "docs"
CATALOG = ROOT / "scenarios"
README = ROOT / "README.md"
CONTRACT = DOCS / "contract.md"
SCENARIOS_DOC = DOCS / "scenarios.md"
ADAPTERS_DOC = DOCS / "adapters.md"

REQUIREMENTS = [f"OWN-{n}" for n in range(1, 21)]


# -- reading markdown -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    path: Path
    section: str
    line: int                      # 1-based line of the header row
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def where(self) -> str:
        return f"{rel(self.path)}, section {self.section!r} (table at line {self.line})"


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_CODE = re.compile(r"`([^`]+)`")


def rel(path: Path) -> str:
    """A path as the messages show it: relative to the repository where it is inside."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _norm_heading(text: str) -> str:
    """``7. Scenarios that check it`` -> ``scenarios that check it``."""
    return re.sub(r"^\d+(\.\d+)*\.?\s+", "", text.strip()).lower()


def _lines_outside_fences(text: str) -> list[tuple[int, str, bool]]:
    """Every line as (1-based number, text, inside a fenced code block)."""
    out, fenced = [], False
    for i, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            out.append((i, line, True))
            fenced = not fenced
            continue
        out.append((i, line, fenced))
    return out


def section_lines(path: Path, title: str) -> list[tuple[int, str, bool]]:
    """The lines of the section headed ``title`` (any level), up to the next heading of the same
    or a higher level. Fails the test, naming the file, when there is no such heading."""
    lines = _lines_outside_fences(path.read_text(encoding="utf-8"))
    want = _norm_heading(title)
    start = level = None
    for idx, (_, line, fenced) in enumerate(lines):
        m = None if fenced else _HEADING.match(line)
        if m is None:
            continue
        if start is None:
            if _norm_heading(m.group(2)) == want:
                start, level = idx + 1, len(m.group(1))
        elif len(m.group(1)) <= level:
            return lines[start:idx]
    if start is None:
        pytest.fail(f"{rel(path)}: no section headed {title!r}; add it back "
                    "(the docs tests find their tables by it)")
    return lines[start:]


def section_text(path: Path, title: str) -> str:
    return "\n".join(line for _, line, _ in section_lines(path, title))


def _cells(line: str) -> tuple[str, ...]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    return tuple(c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(body))


def _is_separator(cells: tuple[str, ...]) -> bool:
    return bool(cells) and all(re.fullmatch(r":?-{1,}:?", c) for c in cells)


def tables_in(path: Path, title: str) -> list[Table]:
    """Every pipe table of a section (header row, separator row, then rows)."""
    found: list[Table] = []
    block: list[tuple[int, str]] = []

    def flush() -> None:
        if len(block) >= 2:
            header, sep = _cells(block[0][1]), _cells(block[1][1])
            if _is_separator(sep):
                rows = tuple(_cells(line) for _, line in block[2:])
                found.append(Table(path, title, block[0][0], header, rows))
        block.clear()

    for number, line, fenced in section_lines(path, title):
        if not fenced and line.lstrip().startswith("|"):
            block.append((number, line))
        else:
            flush()
    flush()
    return found


def find_table(path: Path, title: str, first_column: str) -> Table:
    """The table of section ``title`` whose first header cell is ``first_column``."""
    tables = tables_in(path, title)
    for t in tables:
        if t.header and t.header[0].strip("` ").lower() == first_column.lower():
            return t
    pytest.fail(f"{rel(path)}, section {title!r}: no table whose first column is "
                f"{first_column!r} (found {[t.header[0] for t in tables]}); add it back")


def codes(cell: str) -> list[str]:
    """The `code spans` of a cell, in order."""
    return _CODE.findall(cell)


def column(table: Table, name: str) -> int:
    names = [h.strip("` ").lower() for h in table.header]
    if name.lower() not in names:
        pytest.fail(f"{table.where}: no column {name!r} (columns: {list(table.header)})")
    return names.index(name.lower())


def cell(row: tuple[str, ...], index: int) -> str:
    """A row's cell, ``""`` where a short row has none."""
    return row[index] if index < len(row) else ""


def _int_or_text(cell: str) -> int | str:
    cell = cell.strip()
    return int(cell) if cell.isdigit() else cell


# -- the catalog and what the docs should say about it ---------------------------------------------


def _req_key(req: str) -> int:
    return int(req.split("-")[1])


def load_catalog():
    scenarios, errors = load_paths(CATALOG.glob("*.yaml"))
    assert not errors, "the catalog does not load:\n" + "\n".join(map(str, errors))
    return scenarios


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _file_of(sc) -> str:
    return Path(sc.path).name


def _code_list(items) -> str:
    items = list(items)
    return ", ".join(f"`{i}`" for i in items) if items else "-"


def catalog_row(sc) -> dict[str, object]:
    return {
        "file": _file_of(sc),
        "scenario": sc.id,
        "profile": sc.profile,
        "requirements": sorted(sc.requirements, key=_req_key),
        "pinned schedules": sorted(s.name for s in pinned(sc)),
        "exhaustive": exhaustive_count(sc),
        "needs": sorted(sc.needs),
    }


def render_catalog_row(sc) -> str:
    r = catalog_row(sc)
    return (f"| `{r['file']}` | `{r['scenario']}` | {r['profile']} | "
            f"{', '.join(r['requirements'])} | {_code_list(r['pinned schedules'])} | "
            f"{r['exhaustive']} | {_code_list(r['needs'])} |")


def catalog_summary(scenarios) -> str:
    files = {_file_of(sc) for sc in scenarios}
    total = sum(exhaustive_count(sc) for sc in scenarios)
    return (f"{len(scenarios)} scenarios in {len(files)} files; {total} schedules in exhaustive "
            "mode (with a driver that can restart).")


def _ordered(scenarios):
    """File by file (sorted), in file order within a file: as the catalog table lists them."""
    return sorted(scenarios, key=lambda sc: (_file_of(sc), sc.line))


def by_requirement(scenarios) -> dict[str, list]:
    out: dict[str, list] = {r: [] for r in REQUIREMENTS}
    for sc in sorted(scenarios, key=lambda s: s.id):
        for r in sc.requirements:
            out[r].append(sc)
    return out


def render_scenarios_requirement_row(req: str, scenarios) -> str:
    return f"| {req} | {_code_list(sc.id for sc in by_requirement(scenarios)[req])} |"


def render_contract_row(req: str, scenarios) -> str:
    listed = by_requirement(scenarios)[req]
    core = [sc.id for sc in listed if sc.profile == "core"]
    extended = [sc.id for sc in listed if sc.profile == "extended"]
    return f"| {req} | {_code_list(core)} | {_code_list(extended)} |"


def render_checks_row(req: str, _scenarios=None) -> str:
    return f"| {req} | {_code_list(requirement_checks()[req])} |"


def render_all(scenarios) -> str:
    out = ["docs/scenarios.md, section 'The catalog':", "", catalog_summary(scenarios), "",
           "| file | scenario | profile | requirements | pinned schedules | exhaustive | needs |",
           "|---|---|---|---|---|---|---|"]
    out += [render_catalog_row(sc) for sc in _ordered(scenarios)]
    out += ["", "| requirement | scenarios |", "|---|---|"]
    out += [render_scenarios_requirement_row(r, scenarios) for r in REQUIREMENTS]
    out += ["", "docs/contract.md, section 'Scenarios that check it':", "",
            "| requirement | core scenarios | extended scenarios |", "|---|---|---|"]
    out += [render_contract_row(r, scenarios) for r in REQUIREMENTS]
    out += ["", f"docs/contract.md, section {CHECKS_SECTION!r}:", "",
            "| requirement | checks |", "|---|---|"]
    out += [render_checks_row(r) for r in REQUIREMENTS]
    return "\n".join(out)


def _diff_message(where: str, what: str, missing, extra) -> list[str]:
    """``add ...`` / ``remove ...`` lines for what a doc lacks and what it has in excess."""
    def items(names) -> str:
        return ", ".join(f"`{n}`" for n in sorted(names))

    lead = f"{what} " if what else ""
    msgs = []
    if missing:
        msgs.append(f"{where}: add {lead}{items(missing)}")
    if extra:
        msgs.append(f"{where}: remove {lead}{items(extra)} (not in the code or the catalog)")
    return msgs


CATALOG_SECTION = "The catalog"
CHECKS_SECTION = "Checks that read it"


def _catalog_table() -> Table:
    return find_table(SCENARIOS_DOC, CATALOG_SECTION, "file")


def _doc_catalog_rows(table: Table) -> dict[str, tuple[str, ...]]:
    sc_col = column(table, "scenario")
    rows: dict[str, tuple[str, ...]] = {}
    for row in table.rows:
        ids = codes(cell(row, sc_col))
        if len(ids) != 1:
            pytest.fail(f"{table.where}: a row without exactly one `scenario id`: {' | '.join(row)}")
        if ids[0] in rows:
            pytest.fail(f"{table.where}: scenario `{ids[0]}` has two rows; remove one")
        rows[ids[0]] = row
    return rows


# -- (i) docs/scenarios.md's catalog table ------------------------------------------------------


def test_scenarios_doc_lists_every_catalog_scenario_with_its_requirements(catalog):
    table = _catalog_table()
    doc = _doc_catalog_rows(table)
    by_id = {sc.id: sc for sc in catalog}
    req_col = column(table, "requirements")
    problems = []
    for sid in sorted(set(by_id) - set(doc)):
        problems.append(f"{table.where}: add the row\n  {render_catalog_row(by_id[sid])}")
    for sid in sorted(set(doc) - set(by_id)):
        problems.append(f"{table.where}: remove the row of `{sid}`: no such scenario in "
                        "scenarios/*.yaml")
    for sid in sorted(set(doc) & set(by_id)):
        got = re.findall(r"OWN-\d+", cell(doc[sid], req_col))
        want = sorted(by_id[sid].requirements, key=_req_key)
        if sorted(got, key=_req_key) != want or len(got) != len(set(got)):
            problems.append(f"{table.where}: scenario `{sid}` lists {', '.join(got) or 'nothing'}; "
                            f"its requirements are {', '.join(want)}. The row should read\n  "
                            f"{render_catalog_row(by_id[sid])}")
    assert not problems, "\n".join(problems)


def test_scenarios_doc_catalog_rows_match_the_catalog(catalog):
    """The other generated columns (file, profile, pinned schedules, counts, needs) and the
    summary line above the table."""
    table = _catalog_table()
    doc = _doc_catalog_rows(table)
    problems = []
    for sc in catalog:
        row = doc.get(sc.id)
        if row is None:
            continue  # reported by the test above
        want = catalog_row(sc)
        got = {
            "file": (codes(cell(row, column(table, "file"))) or [""])[0],
            "profile": cell(row, column(table, "profile")).strip("` "),
            "pinned schedules": sorted(codes(cell(row, column(table, "pinned schedules")))),
            "exhaustive": _int_or_text(cell(row, column(table, "exhaustive"))),
            "needs": sorted(codes(cell(row, column(table, "needs")))),
        }
        wrong = [k for k in got if got[k] != want[k]]
        if wrong:
            problems.append(f"{table.where}: scenario `{sc.id}`: {', '.join(wrong)} out of date; "
                            f"the row should read\n  {render_catalog_row(sc)}")
    text = section_text(SCENARIOS_DOC, CATALOG_SECTION)
    summary = catalog_summary(catalog)
    m = re.search(r"\d+ scenarios in \d+ files; \d+ schedules", text)
    if m is None or not summary.startswith(m.group(0)):
        problems.append(f"{rel(SCENARIOS_DOC)}, section {CATALOG_SECTION!r}: the "
                        f"summary line should read {summary!r}")
    order = [sc.id for sc in _ordered(catalog)]
    doc_order = [sid for sid in doc if sid in set(order)]
    if doc_order != [sid for sid in order if sid in doc]:
        problems.append(f"{table.where}: list the rows file by file, in each file's order:\n  "
                        + "\n  ".join(order))
    assert not problems, "\n".join(problems)


def test_scenarios_doc_per_requirement_table_matches_the_catalog(catalog):
    table = find_table(SCENARIOS_DOC, CATALOG_SECTION, "requirement")
    problems = _per_requirement_problems(
        table, catalog, {r: ({sc.id for sc in scs},) for r, scs in by_requirement(catalog).items()},
        ("scenarios",), render_scenarios_requirement_row)
    assert not problems, "\n".join(problems)


# -- (ii) docs/contract.md's "Scenarios that check it" ----------------------------------------------


CONTRACT_SECTION = "Scenarios that check it"


def test_contract_lists_the_scenarios_that_check_each_requirement(catalog):
    table = find_table(CONTRACT, CONTRACT_SECTION, "requirement")
    want = {}
    for r, scs in by_requirement(catalog).items():
        want[r] = ({sc.id for sc in scs if sc.profile == "core"},
                   {sc.id for sc in scs if sc.profile == "extended"})
    problems = _per_requirement_problems(table, catalog, want,
                                         ("core scenarios", "extended scenarios"),
                                         render_contract_row)
    assert not problems, "\n".join(problems)


def test_contract_lists_the_checks_that_read_each_requirement(catalog):
    table = find_table(CONTRACT, CHECKS_SECTION, "requirement")
    want = {r: (set(checks),) for r, checks in requirement_checks().items()}
    problems = _per_requirement_problems(table, catalog, want, ("checks",), render_checks_row)
    assert not problems, "\n".join(problems)


def test_every_check_has_a_row_in_the_scenarios_doc():
    table = find_table(SCENARIOS_DOC, "The oracle and the checks", "check")
    listed = {c for row in table.rows for c in codes(row[0])}
    names = set(REGISTRY) | set(RUNNER_CHECKS)
    problems = _diff_message(table.where, "rows for the checks", names - listed, listed - names)
    assert not problems, "\n".join(problems)


def _per_requirement_problems(table: Table, catalog, want: dict[str, tuple[set[str], ...]],
                              columns: tuple[str, ...], render) -> list[str]:
    cols = [column(table, c) for c in columns]
    problems: list[str] = []
    seen: dict[str, tuple[str, ...]] = {}
    for row in table.rows:
        req = row[0].strip("` ")
        if req not in want:
            problems.append(f"{table.where}: remove the row {req!r}: not a requirement OWN-1..OWN-20")
            continue
        if req in seen:
            problems.append(f"{table.where}: {req} has two rows; keep one")
        seen[req] = row
    for req in REQUIREMENTS:
        row = seen.get(req)
        if row is None:
            problems.append(f"{table.where}: add the row\n  {render(req, catalog)}")
            continue
        for col, name, expected in zip(cols, columns, want[req]):
            got = set(codes(cell(row, col)))
            if got != expected:
                where = f"{table.where}, {req}, column {name!r}"
                msgs = _diff_message(where, "", expected - got, got - expected)
                problems.append("\n".join(msgs) + f"\n  the row should read\n  {render(req, catalog)}")
    return problems


# -- (iii) options ----------------------------------------------------------------------------------


def _mentions_flag(text: str, flag: str) -> bool:
    return re.search(re.escape(flag) + r"(?![\w-])", text) is not None


def test_every_option_is_in_the_readme_options_table():
    table = find_table(README, "Options", "option (ini twin `sandbox_*`)")
    documented, flags = _flags_of(table), {opt.flag for opt in OPTIONS}
    problems = _diff_message(table.where, "rows for", flags - documented, documented - flags)
    assert not problems, "\n".join(problems)


def _flags_of(table: Table) -> set[str]:
    flags = set()
    for row in table.rows:
        for code in codes(cell(row, 0)):
            m = re.match(r"(--sandbox-[a-z-]+)", code)
            if m:
                flags.add(m.group(1))
    return flags


def test_every_option_is_in_the_scenarios_doc_options_table():
    table = find_table(SCENARIOS_DOC, "Running the suite", "option")
    documented, flags = _flags_of(table), {opt.flag for opt in OPTIONS}
    problems = _diff_message(table.where, "rows for", flags - documented, documented - flags)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("flag", [opt.flag for opt in OPTIONS])
def test_every_option_is_documented(flag):
    readme = README.read_text(encoding="utf-8")
    docs = {p: p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md"))}
    problems = []
    if not _mentions_flag(readme, flag):
        problems.append(f"README.md: document {flag} (section 'Options')")
    if not any(_mentions_flag(text, flag) for text in docs.values()):
        problems.append(f"docs/: no page mentions {flag}; document it (docs/scenarios.md, "
                        "section 'Running the suite', lists every option)")
    assert not problems, "\n".join(problems)


# -- (iv) the scenario language ----------------------------------------------------------------------


def _step_rows() -> dict[str, list[tuple[str, ...]]]:
    table = find_table(SCENARIOS_DOC, "Story steps", "step")
    rows: dict[str, list[tuple[str, ...]]] = {}
    for row in table.rows:
        actions = {c.split(":")[0].strip() for c in codes(row[0])}
        if not actions:
            pytest.fail(f"{table.where}: a row without a `action: ...` in its first cell: "
                        f"{' | '.join(row)}")
        for action in actions:
            rows.setdefault(action, []).append(row)
    return rows


def test_every_story_action_is_documented():
    table = find_table(SCENARIOS_DOC, "Story steps", "step")
    rows = _step_rows()
    problems = _diff_message(table.where, "rows for the story actions", set(STEP_SCHEMAS) - set(rows),
                             set(rows) - set(STEP_SCHEMAS))
    assert not problems, "\n".join(problems)


def _mentions_field(text: str, name: str) -> bool:
    return re.search(r"`" + re.escape(name) + r"(:|`)", text) is not None


def test_every_step_field_is_documented():
    """Every field of every action's schema is named (`field:`) in that action's row(s)."""
    rows = _step_rows()
    table = find_table(SCENARIOS_DOC, "Story steps", "step")
    problems = []
    if not _mentions_field(section_text(SCENARIOS_DOC, "Story steps"), "label"):
        problems.append("docs/scenarios.md, section 'Story steps': document the step field `label:`")
    for action, schema in sorted(STEP_SCHEMAS.items()):
        text = " ".join(" ".join(r) for r in rows.get(action, []))
        if not text:
            continue  # reported by test_every_story_action_is_documented
        problems += [f"{table.where}, the `{action}` row: document its field `{prop}:`"
                     for prop in schema["properties"]
                     if prop not in (action, "label") and not _mentions_field(text, prop)]
    assert not problems, "\n".join(problems)


def test_every_scenario_field_is_documented():
    table = find_table(SCENARIOS_DOC, "The file, field by field", "field")
    documented = {c.split(":")[0] for row in table.rows for c in codes(row[0])[:1]}
    props = set(SCENARIO_SCHEMA["properties"])
    problems = _diff_message(table.where, "rows for the scenario fields", props - documented,
                             documented - props)
    required = set(SCENARIO_SCHEMA["required"])
    req_col = column(table, "required")
    for row in table.rows:
        name = (codes(row[0]) or [""])[0]
        if name in props and (cell(row, req_col).strip().lower() == "yes") != (name in required):
            problems.append(f"{table.where}: field `{name}`: the schema makes it "
                            f"{'required' if name in required else 'optional'}; say "
                            f"{'yes' if name in required else 'no'} in column 'required'")
    # The nested fields: a sandbox declaration, its durable state, a pinned schedule.
    sandboxes = next((r for r in table.rows if codes(r[0])[:1] == ["sandboxes"]), None)
    sandbox_props = SCENARIO_SCHEMA["properties"]["sandboxes"]["additionalProperties"]["properties"]
    if sandboxes is not None:
        text = " ".join(sandboxes)
        for prop in list(sandbox_props) + list(sandbox_props["durable"]["properties"]):
            if not _mentions_field(text, prop):
                problems.append(f"{table.where}, the `sandboxes` row: document `{prop}`")
    sched_props = SCENARIO_SCHEMA["properties"]["schedules"]["additionalProperties"]["properties"]
    pinned_text = section_text(SCENARIOS_DOC, "Pinned schedules")
    for prop in sched_props:
        if not _mentions_field(pinned_text, prop):
            problems.append(f"docs/scenarios.md, section 'Pinned schedules': document `{prop}:`")
    assert not problems, "\n".join(problems)


def test_every_expectation_field_is_documented():
    table = find_table(SCENARIOS_DOC, "Expectations", "field")
    documented = {c.split(":")[0] for row in table.rows for c in codes(row[0])[:1]}
    expect = SCENARIO_SCHEMA["properties"]["expect"]["properties"]
    problems = _diff_message(table.where, "rows for the expect fields", set(expect) - documented,
                             documented - set(expect))
    rows = {codes(r[0])[0].split(":")[0]: " ".join(r) for r in table.rows if codes(r[0])}
    for prop in expect["sandboxes"]["additionalProperties"]["properties"]:
        if "sandboxes" in rows and not _mentions_field(rows["sandboxes"], prop):
            problems.append(f"{table.where}, the `sandboxes` row: document `{prop}:`")
    if "warnings" in rows:
        listed = {c for c in codes(rows["warnings"]) if c in WARNING_REASONS or
                  re.fullmatch(r"(Container|Sandbox|Unowned)[A-Za-z]+", c)}
        problems += _diff_message(f"{table.where}, the `warnings` row", "the reasons",
                                  set(WARNING_REASONS) - listed, listed - set(WARNING_REASONS))
    assert not problems, "\n".join(problems)


# -- (v) capabilities -------------------------------------------------------------------------------


def test_every_capability_is_documented():
    texts = {p: p.read_text(encoding="utf-8") for p in (ADAPTERS_DOC, SCENARIOS_DOC)}
    problems = [f"document the capability `{cap}` ({CAPABILITIES[cap]}) in docs/scenarios.md, "
                "section 'Capabilities and skips' (or in docs/adapters.md)"
                for cap in sorted(CAPABILITIES)
                if not any(f"`{cap}`" in text for text in texts.values())]
    table = find_table(SCENARIOS_DOC, "Capabilities and skips", "capability")
    listed = {c for row in table.rows for c in codes(row[0])}
    problems += _diff_message(table.where, "rows for the capabilities",
                              set(CAPABILITIES) - listed, listed - set(CAPABILITIES))
    assert not problems, "\n".join(problems)


# -- (vi) warning reasons ---------------------------------------------------------------------------


def test_every_warning_reason_is_in_the_contract():
    table = find_table(CONTRACT, "Warnings", "reason")
    listed = {c for row in table.rows for c in codes(row[0])}
    problems = _diff_message(table.where, "rows for the Warning reasons",
                             set(WARNING_REASONS) - listed, listed - set(WARNING_REASONS))
    text = CONTRACT.read_text(encoding="utf-8")
    problems += [f"docs/contract.md: the Warning reason {r} is never mentioned"
                 for r in WARNING_REASONS if r not in text]
    assert not problems, "\n".join(problems)


# -- self-tests of the markdown reader ------------------------------------------------------------


def test_markdown_reader_skips_fenced_headings_and_escaped_pipes(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n```sh\n# not a heading\n```\n\n## 3. The Table\n\nprose\n\n"
                    "| a | b |\n|---|:-:|\n| `x\\|y` | `one`, `two` |\n| z | - |\n\n"
                    "| other | t |\n|---|---|\n| 1 | 2 |\n\n## Next\n\n| a | b |\n|---|---|\n"
                    "| no | no |\n", encoding="utf-8")
    table = find_table(page, "The table", "a")
    assert table.rows == (("`x|y`", "`one`, `two`"), ("z", "-"))
    assert codes(table.rows[0][1]) == ["one", "two"] and codes(table.rows[1][1]) == []
    assert [t.header[0] for t in tables_in(page, "the table")] == ["a", "other"]
    assert "not a heading" not in section_text(page, "Next")
    with pytest.raises(pytest.fail.Exception, match="no section headed 'Missing'"):
        section_lines(page, "Missing")


@pytest.mark.parametrize("path, section, first", [
    (SCENARIOS_DOC, CATALOG_SECTION, "file"),
    (SCENARIOS_DOC, CATALOG_SECTION, "requirement"),
    (CONTRACT, CONTRACT_SECTION, "requirement"),
    (CONTRACT, CHECKS_SECTION, "requirement"),
])
def test_each_generated_table_appears_once(path, section, first):
    """Generated tables are regenerated in place, never appended: one table of each kind."""
    found = [t for t in tables_in(path, section)
             if t.header and t.header[0].strip("` ").lower() == first]
    assert len(found) == 1, (f"{rel(path)}, section {section!r}: {len(found)} tables whose first "
                             f"column is {first!r} (at lines {[t.line for t in found]}); keep one "
                             "and regenerate it in place: python tests/test_docs.py --write")


# -- regenerating in place ---------------------------------------------------------------------


_SUMMARY = re.compile(r"^\d+ scenarios in \d+ files; ")


def _replace_table(lines: list[str], table: Table, new_rows: list[str]) -> None:
    start = table.line - 1  # the header row; the separator follows, then the rows
    lines[start + 2:start + 2 + len(table.rows)] = new_rows


def write_generated(scenarios) -> list[str]:
    """Regenerate every generated table (and the catalog's summary line) in place; return the
    files changed. A table is found as the tests find it, so it is replaced where it stands."""
    changed = []
    ordered = _ordered(scenarios)
    jobs = {
        SCENARIOS_DOC: [(CATALOG_SECTION, "file", [render_catalog_row(sc) for sc in ordered]),
                        (CATALOG_SECTION, "requirement",
                         [render_scenarios_requirement_row(r, scenarios) for r in REQUIREMENTS])],
        CONTRACT: [(CONTRACT_SECTION, "requirement",
                    [render_contract_row(r, scenarios) for r in REQUIREMENTS]),
                   (CHECKS_SECTION, "requirement", [render_checks_row(r) for r in REQUIREMENTS])],
    }
    for path, tables in jobs.items():
        before = path.read_text(encoding="utf-8")
        for section, first, rows in tables:
            # Later tables first would be wrong after an earlier one changes length: re-read.
            lines = path.read_text(encoding="utf-8").split("\n")
            _replace_table(lines, find_table(path, section, first), rows)
            path.write_text("\n".join(lines), encoding="utf-8")
        if path == SCENARIOS_DOC:
            lines = path.read_text(encoding="utf-8").split("\n")
            in_section = {n for n, _, _ in section_lines(path, CATALOG_SECTION)}
            for i, line in enumerate(lines):
                if i + 1 in in_section and _SUMMARY.match(line):
                    lines[i] = catalog_summary(scenarios)
            path.write_text("\n".join(lines), encoding="utf-8")
        if path.read_text(encoding="utf-8") != before:
            changed.append(rel(path))
    return changed


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--write"]:
        print("regenerated:", ", ".join(write_generated(load_catalog())) or "nothing to change")
    else:
        print(render_all(load_catalog()))
