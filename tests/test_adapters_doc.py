"""The adapter guide's complete example really is a conforming adapter (docs/adapters.md)."""

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"

pytestmark = pytest.mark.slow


def test_minimal_adapter_example_passes_the_catalog(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(EXAMPLES))
    result = pytester.runpytest_subprocess("--sandbox-driver=minimal_adapter:factory", "-q",
                                           "-rs", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*driver minimal-example 0.1: *"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0
    assert outcomes.get("passed", 0) > 0
    # It declares only "restart": every skip names the capabilities it lacks.
    skips = [line for line in result.stdout.lines if line.startswith("SKIPPED")]
    assert bool(skips) == bool(outcomes.get("skipped"))
    assert all("lacks capabilities" in line for line in skips), skips
