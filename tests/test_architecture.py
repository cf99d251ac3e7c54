"""The dependency rule of docs/architecture.md, and the contract's requirement IDs.

Imports are read with ``ast`` (nothing under test is imported), so a module that would import
pytest or docker is caught even where those are installed. Imports inside functions and
``if TYPE_CHECKING:`` blocks count too, as do ``importlib.import_module("...")`` and
``__import__("...")`` calls with a literal name.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pytest_sandbox_conformance"
DRIVER = ROOT / "reference_driver"
ENGINES = PACKAGE / "engines"

STDLIB = frozenset(sys.stdlib_module_names)
#: What reference_driver/ may import besides the standard library and itself.
DRIVER_MAY_IMPORT = frozenset({
    "pytest_sandbox_conformance.engines.base",
    "pytest_sandbox_conformance.api",
})
#: The reference driver's gRPC face may also import the wire protocol and the Docker engine.
SERVER_MAY_IMPORT = DRIVER_MAY_IMPORT | {
    "grpc",
    "pytest_sandbox_conformance.grpc",
    "pytest_sandbox_conformance.engines.docker",
}
SERVER = DRIVER / "grpc_server.py"
#: Top-level packages the pure parts must not import.
FORBIDDEN_IN_PURE = frozenset({"pytest", "_pytest", "docker"})

REQUIREMENTS = [f"OWN-{n}" for n in range(1, 21)]
#: OWN-20 (timing independence) is checked by the scenario runner, not by a unit test.
UNIT_TESTED_REQUIREMENTS = [f"OWN-{n}" for n in range(1, 20)]


# -- reading imports ------------------------------------------------------------------------------


def module_name(path: Path) -> str:
    """The dotted module name of a file under ROOT (``pkg/__init__.py`` is ``pkg``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str | None, level: int, importer: str, is_package: bool) -> str:
    base = importer.split(".")
    if not is_package:
        base = base[:-1]  # a module's relative imports start from its package
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(source: str, importer: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module a source imports, as ``(line, absolute dotted name)``.

    ``from a import b`` yields ``a.b`` (b may be a submodule; a name in ``a`` is judged as part of
    ``a`` by :func:`_allowed_for_driver`); ``from . import x`` is resolved against ``importer``.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(node.module, node.level, importer, is_package)
            else:
                base = node.module or ""
            found.extend((node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base)
                         for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            dynamic = ((isinstance(func, ast.Name) and func.id == "__import__")
                       or (isinstance(func, ast.Attribute) and func.attr == "import_module"))
            if (dynamic and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                found.append((node.lineno, node.args[0].value))
    return found


def file_imports(path: Path) -> list[tuple[int, str]]:
    return imports_of(path.read_text(encoding="utf-8"), module_name(path),
                      is_package=path.name == "__init__.py")


def top(name: str) -> str:
    return name.split(".")[0]


def _allowed_for_driver(name: str, allowed_names: frozenset[str] = DRIVER_MAY_IMPORT) -> bool:
    if top(name) in STDLIB or top(name) == "reference_driver":
        return True
    # ``from pytest_sandbox_conformance.api import Snapshot`` reads as ...api.Snapshot.
    return any(name == allowed or name.startswith(allowed + ".") for allowed in allowed_names)


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


DRIVER_FILES = python_files(DRIVER)
ENGINE_FILES = python_files(ENGINES)
#: Parsing scenarios, exploring schedules and the run's model do no I/O beyond reading a file and
#: import neither pytest nor docker.
PURE_FILES = [PACKAGE / "api.py", ENGINES / "base.py", ENGINES / "fake.py", ENGINES / "spec.py",
              ENGINES / "clone.py", ENGINES / "fakecheck.py", ENGINES / "dockerapi.py",
              ENGINES / "podman.py", *DRIVER_FILES,
              *python_files(PACKAGE / "scenario"), *python_files(PACKAGE / "exploration"),
              *python_files(PACKAGE / "run")]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- the reader itself ----------------------------------------------------------------------------


def test_the_import_reader_resolves_and_catches_what_it_must():
    source = "\n".join([
        "from __future__ import annotations",
        "import os.path",
        "from .state import Record",
        "from . import naming",
        "from ..engines import fake",
        "from pytest_sandbox_conformance.api import Snapshot",
        "def f():",
        "    import docker",
        "    importlib.import_module('pytest')",
        "    __import__('_pytest.main')",
    ])
    names = [name for _, name in imports_of(source, "reference_driver.sub.driver")]
    assert names == [
        "__future__.annotations", "os.path", "reference_driver.sub.state.Record",
        "reference_driver.sub.naming", "reference_driver.engines.fake",
        "pytest_sandbox_conformance.api.Snapshot", "docker", "pytest", "_pytest.main",
    ]
    assert [name for _, name in imports_of("from . import x", "pkg", is_package=True)] == ["pkg.x"]
    assert not _allowed_for_driver("pytest_sandbox_conformance.engines.fake.FakeEngine")
    assert not _allowed_for_driver("pytest_sandbox_conformance.run.gateway")
    assert not _allowed_for_driver("pytest_sandbox_conformance.apifoo")
    assert not _allowed_for_driver("docker")
    assert _allowed_for_driver("pytest_sandbox_conformance.engines.base.Container")


def test_the_files_under_rule_exist():
    assert {p.name for p in DRIVER_FILES} >= {"__init__.py", "decision.py", "driver.py",
                                             "journal.py", "events.py"}
    assert {p.name for p in ENGINE_FILES} >= {"__init__.py", "base.py", "fake.py"}
    for path in PURE_FILES:
        assert path.is_file(), path


# -- the dependency rule --------------------------------------------------------------------------


@pytest.mark.parametrize("path", DRIVER_FILES, ids=_rel)
def test_reference_driver_imports_only_stdlib_itself_engine_base_and_api(path):
    allowed = SERVER_MAY_IMPORT if path == SERVER else DRIVER_MAY_IMPORT
    bad = [f"{_rel(path)}:{line}: {name}" for line, name in file_imports(path)
           if not _allowed_for_driver(name, allowed)]
    assert not bad, ("reference_driver/ may import only the standard library, itself, "
                     "pytest_sandbox_conformance.engines.base and pytest_sandbox_conformance.api "
                     "(its gRPC face also grpc, the generated code and the Docker engine):\n"
                     + "\n".join(bad))


@pytest.mark.parametrize("path", ENGINE_FILES, ids=_rel)
def test_engines_know_nothing_of_drivers(path):
    bad = [f"{_rel(path)}:{line}: {name}" for line, name in file_imports(path)
           if top(name) == "reference_driver"]
    assert not bad, "engines must not import reference_driver:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", PURE_FILES, ids=_rel)
def test_pure_parts_import_neither_pytest_nor_docker(path):
    bad = [f"{_rel(path)}:{line}: {name}" for line, name in file_imports(path)
           if top(name) in FORBIDDEN_IN_PURE]
    assert not bad, "pure modules must not import pytest or docker:\n" + "\n".join(bad)


#: Modules that must run wherever the suite runs, on the standard library alone.
STDLIB_ONLY_FILES = python_files(PACKAGE / "gate")


@pytest.mark.parametrize("path", STDLIB_ONLY_FILES, ids=_rel)
def test_the_observation_gate_imports_only_the_standard_library(path):
    bad = [f"{_rel(path)}:{line}: {name}" for line, name in file_imports(path)
           if top(name) not in STDLIB and not name.startswith("pytest_sandbox_conformance.gate.")]
    assert not bad, "the observation gate may import only the standard library:\n" + "\n".join(bad)


#: The package's folders, each allowed to import only the ones listed (and itself): dependencies
#: run one way, from the pytest face at the top down to the data types.
LAYERS = {
    "api": set(),
    "engines": {"api"},
    "scenario": {"api", "engines"},
    "exploration": {"scenario"},
    "gate": set(),
    "grpc": set(),
    "live": {"engines"},
    "adapters": {"api", "engines", "gate", "grpc"},
    "run": {"api", "engines", "scenario", "exploration", "adapters", "live"},
    "reports": {"run", "scenario", "exploration"},
    "plugin": {"api", "engines", "scenario", "exploration", "adapters", "live", "run", "reports",
               "gate"},
    "cli": {"scenario", "exploration", "engines", "plugin", "reports", "adapters", "run"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


@pytest.mark.parametrize("path", [p for p in python_files(PACKAGE) if p.parent != PACKAGE
                                  or p.stem in LAYERS], ids=_rel)
def test_dependencies_run_one_way(path):
    part = _part(path)
    allowed = LAYERS[part] | {part, "__version__"}
    bad = []
    for line, name in file_imports(path):
        parts = name.split(".")
        if parts[0] != "pytest_sandbox_conformance" or len(parts) < 2:
            continue
        if parts[1] not in allowed:
            bad.append(f"{_rel(path)}:{line}: {name}")
    assert not bad, (f"{part}/ may import only {sorted(LAYERS[part])} of the package "
                     "(docs/architecture.md, the dependency rule):\n" + "\n".join(bad))


def test_only_the_pytest_face_imports_pytest():
    bad = [f"{_rel(p)}:{line}: {name}" for p in python_files(PACKAGE) if _part(p) != "plugin"
           for line, name in file_imports(p) if top(name) in ("pytest", "_pytest")]
    assert not bad, "only plugin/ may import pytest:\n" + "\n".join(bad)


# -- requirement IDs ------------------------------------------------------------------------------


def _mentions(text: str, requirement: str) -> bool:
    # The word boundary keeps OWN-1 from matching inside OWN-10..OWN-19.
    return re.search(rf"\b{re.escape(requirement)}\b", text) is not None


def test_contract_doc_names_every_requirement():
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    missing = [r for r in REQUIREMENTS if not _mentions(text, r)]
    assert not missing, f"docs/contract.md does not mention {missing}"


def _test_comments() -> dict[str, list[str]]:
    """Every ``#`` comment in tests/*.py (this file excepted), keyed by file name."""
    comments: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        comments[path.name] = [t.string for t in tokens if t.type == tokenize.COMMENT]
    return comments


def test_every_requirement_but_timing_is_named_by_a_test_comment():
    comments = [c for found in _test_comments().values() for c in found]
    missing = [r for r in UNIT_TESTED_REQUIREMENTS
               if not any(_mentions(c, r) for c in comments)]
    assert not missing, (f"no `# OWN-n` comment in tests/*.py names {missing}; "
                         "mark the test that checks each requirement")


def test_requirement_mentions_use_a_word_boundary():
    assert not _mentions("# OWN-10", "OWN-1")
    assert not _mentions("# OWN-1x", "OWN-1")
    assert _mentions("# OWN-1: authority from create", "OWN-1")
    assert _mentions("# OWN-3, OWN-17", "OWN-17")
