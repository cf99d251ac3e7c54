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


def test_engine_adapter_example_passes_the_simple_scenarios_and_fails_the_handoffs(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first driver of docs/adapters.md ("Writing an adapter, step by step"): authority from
    # create, missing kept, fail closed, no handoff.
    monkeypatch.setenv("PYTHONPATH", str(EXAMPLES))
    simple = ("missing-instance-kept or delete-idempotent or copied-labels-running-copy or "
              "warnings-deduplicated-duplicate or copied-labels-wrong-generation")
    result = pytester.runpytest_subprocess("--sandbox-driver=engine_adapter:factory", "-q",
                                           "-p", "no:cacheprovider", "-k", simple)
    result.stdout.fnmatch_lines(["*driver engine-example 0.1: *"])
    outcomes = result.parseoutcomes()  # 7: "missing-instance-kept" also selects its -long twin
    assert outcomes["passed"] == 7 and set(outcomes) <= {"passed", "deselected"}, outcomes
    handoff = pytester.runpytest_subprocess("--sandbox-driver=engine_adapter:factory", "-q",
                                            "-p", "no:cacheprovider", "-k",
                                            "overlap-backup-first or gap-missed")
    outcomes = handoff.parseoutcomes()
    assert outcomes.get("failed") == 2 and "errors" not in outcomes and "error" not in outcomes
    broken = [line for line in handoff.stdout.lines if line.startswith("requirements:")]
    assert len(broken) == 2 and all("OWN-4" in line for line in broken), broken
    assert any(line.startswith("requirements: OWN-5") for line in broken), broken
    assert "Traceback" not in handoff.stdout.str()
