"""``sandbox-conformance``: scenario tools that run nothing against a driver.

* ``sandbox-conformance lint PATH...``: check scenario files (or folders of them): their shape,
  their names and the story's meaning (``scenario/meaning.py``), then rehearse their pinned
  schedules against the contract (the reference driver on the fake engine: an expectation no
  conforming driver meets is the file's mistake); print every problem of every file as
  ``file:line: field: message``; exit 1 if any.
* ``sandbox-conformance list [PATH...]``: the scenarios (default: the bundled catalog) with their
  requirements, profile, needs and schedule counts.
* ``sandbox-conformance schema``: print the JSON Schema of scenario files and of each step.
* ``sandbox-conformance make-image [--ref REF] [--busybox PATH]``: build the sandbox image from a
  static busybox and import it into the Docker engine (``DOCKER_HOST`` or the current context).
* ``sandbox-conformance supervisor-stub PATH``: write a stand-in for OpenShell's in-sandbox
  supervisor (a tiny static x86-64 ELF that runs ``/bin/sh`` until it is stopped), for drivers
  that bind-mount a supervisor binary into their containers (``docs/openshell.md``).
* ``sandbox-conformance merge-reports R1.json R2.json ... -o report.json [--html PATH]
  [--claim PATH] [--implementation KEY=VALUE]``: the report of a whole run from its shards'
  reports (``--sandbox-shard=K/N``, ``reports/merge.py``); prints the verdict; exit 0 when
  conformant, 1 when not conformant, 2 when incomplete, 3 when the reports cannot be merged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .exploration.schedule import DEFAULT_MAX_SCHEDULES, exhaustive_count, pinned
from .scenario import SCENARIO_SCHEMA, STEP_SCHEMAS, Scenario, ScenarioError
from .scenario.loader import internal_error, load_paths

__all__ = ["main"]


def _files(paths: Sequence[str]) -> tuple[list[Path], list[ScenarioError]]:
    files: list[Path] = []
    errors: list[ScenarioError] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            # Regular files only: a FIFO or a folder named x.yaml is no scenario file.
            files.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml")
                                and q.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            errors.append(ScenarioError(raw, None, "", "no such file or folder"))
    return files, errors


def lint_paths(paths: Sequence[str], contract: bool = True
               ) -> tuple[list[Path], list[Scenario], list[ScenarioError]]:
    """What ``lint`` checks, file by file, never raising: the files found, the scenarios that
    pass every stage, and every problem (shape, names, the story's meaning, and, with
    ``contract``, the pinned schedules rehearsed against the contract). A schedule space of any
    size is fine: above ``--sandbox-max-schedules`` exhaustive mode plays a sample."""
    from .run.rehearsal import rehearse

    files, errors = _files(paths)
    scenarios, load_errors = load_paths(files)
    errors += load_errors
    ok: list[Scenario] = []
    for sc in scenarios:
        found: list[ScenarioError] = []
        if contract:
            try:
                found = rehearse(sc)
            except Exception as exc:  # a bug of the suite: name the file and go on
                found = [internal_error(sc.path, exc)]
        errors += found
        if not found:
            ok.append(sc)
    return files, ok, sorted(errors, key=lambda e: (e.path, e.line or 0, e.field))


def _lint(paths: Sequence[str], contract: bool = True) -> int:
    files, scenarios, errors = lint_paths(paths, contract)
    for e in errors:
        print(e)
    bad_files = len({e.path for e in errors})
    print(f"{len(files)} file(s), {len(scenarios)} scenario(s) clean, {len(errors)} problem(s)"
          + (f" in {bad_files} file(s)" if errors else ""), file=sys.stderr)
    return 1 if errors else 0


def _list(paths: Sequence[str]) -> int:
    if not paths:
        from .plugin.collect import catalog_dir

        paths = [str(catalog_dir())]
    files, errors = _files(paths)
    scenarios, load_errors = load_paths(files)
    for e in errors + load_errors:
        print(e, file=sys.stderr)
    for sc in sorted(scenarios, key=lambda s: s.id):
        count = exhaustive_count(sc)
        over = (f" (over {DEFAULT_MAX_SCHEDULES}: exhaustive mode plays a sample)"
                if count > DEFAULT_MAX_SCHEDULES else "")
        print(f"{sc.id:44} {sc.profile:8} {' '.join(sc.requirements):28} "
              f"pinned={len(pinned(sc))} exhaustive={count}{over} "
              f"needs={','.join(sorted(sc.needs)) or '-'}")
    return 1 if errors or load_errors else 0


def _make_image(ref: str, busybox: str | None) -> int:
    from .engines.base import EngineError
    from .engines.image import make_busybox_image

    try:
        image_id = make_busybox_image(ref, busybox)
    except (EngineError, ImportError) as exc:
        print(f"sandbox-conformance make-image: {exc}", file=sys.stderr)
        return 1
    print(f"{ref} {image_id}")
    return 0


def _supervisor_stub(path: str) -> int:
    from .adapters.supervisor_stub import write_supervisor_stub

    try:
        out = write_supervisor_stub(path)
    except OSError as exc:
        print(f"sandbox-conformance supervisor-stub: cannot write {path}: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


#: merge-reports' exit status per verdict (3: the reports could not be merged).
MERGE_STATUS = {"conformant": 0, "not conformant": 1, "incomplete": 2}


def _merge_reports(paths: Sequence[str], output: str, html: str | None, claim: str | None,
                   implementation: Sequence[str]) -> int:
    from .reports.claim import IMPLEMENTATION_KEYS, parse_implementation
    from .reports.json_report import write_report
    from .reports.merge import MergeError, load_report, merge_reports

    try:
        impl = parse_implementation(list(implementation))
    except ValueError as exc:
        print(f"sandbox-conformance merge-reports: --implementation={exc}: use KEY=VALUE "
              f"with KEY one of {', '.join(IMPLEMENTATION_KEYS)}", file=sys.stderr)
        return 3
    try:
        report = merge_reports([(p, load_report(p)) for p in paths])
    except MergeError as exc:
        print(f"sandbox-conformance merge-reports: {exc}", file=sys.stderr)
        return 3
    outputs = [(output, report)]
    if html:
        from .reports.html_report import render

        outputs.append((html, render(report)))
    if claim:
        from .reports.claim import render_claim

        outputs.append((claim, render_claim(report, impl)))
    for path, text in outputs:
        try:
            write_report(Path(path), text)
        except OSError as exc:
            print(f"sandbox-conformance merge-reports: cannot write {path}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 3
    c = report["counts"]
    print(f"{len(paths)} shard report(s) merged: {report['verdict_text']}; "
          f"{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped, "
          f"{c['error']} errors, {c['not_run']} not run")
    for path, _ in outputs:
        print(f"wrote {path}")
    return MERGE_STATUS.get(report["verdict"], 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox-conformance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    lint = sub.add_parser("lint", help="check scenario files without running anything")
    lint.add_argument("paths", nargs="+", metavar="PATH")
    lint.add_argument("--no-contract", action="store_true",
                      help="do not rehearse the pinned schedules against the contract (the "
                           "reference driver on the fake engine); check shape and story only")
    ls = sub.add_parser("list", help="list scenarios (default: the bundled catalog)")
    ls.add_argument("paths", nargs="*", metavar="PATH")
    sub.add_parser("schema", help="print the JSON Schema of scenario files")
    mk = sub.add_parser("make-image", help="build the sandbox image from a static busybox and "
                        "import it into the Docker engine")
    mk.add_argument("--ref", default="sbx-busybox:local", help="image name (default: %(default)s)")
    mk.add_argument("--busybox", default=None, metavar="PATH",
                    help="a static busybox (default: /bin/busybox, else the usual places)")
    stub = sub.add_parser("supervisor-stub", help="write a stand-in for OpenShell's in-sandbox "
                          "supervisor (a static x86-64 ELF running /bin/sh until stopped)")
    stub.add_argument("path", metavar="PATH", help="where to write it (mode 0755)")
    merge = sub.add_parser("merge-reports", help="the report of a whole run from its shards' "
                           "JSON reports (--sandbox-shard=K/N)")
    merge.add_argument("paths", nargs="+", metavar="REPORT.json")
    merge.add_argument("-o", "--output", required=True, metavar="PATH",
                       help="where to write the merged JSON report")
    merge.add_argument("--html", default=None, metavar="PATH", help="write the HTML report too")
    merge.add_argument("--claim", default=None, metavar="PATH",
                       help="write the Gateway-API-shaped conformance claim too")
    merge.add_argument("--implementation", action="append", default=[], metavar="KEY=VALUE",
                       help="the claim's implementation (repeatable), as "
                            "--sandbox-implementation")
    args = parser.parse_args(argv)
    if args.command == "merge-reports":
        return _merge_reports(args.paths, args.output, args.html, args.claim,
                              args.implementation)
    if args.command == "lint":
        return _lint(args.paths, contract=not args.no_contract)
    if args.command == "list":
        return _list(args.paths)
    if args.command == "make-image":
        return _make_image(args.ref, args.busybox)
    if args.command == "supervisor-stub":
        return _supervisor_stub(args.path)
    print(json.dumps({"scenario": SCENARIO_SCHEMA, "steps": STEP_SCHEMAS}, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
