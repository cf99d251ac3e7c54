"""Readiness gates: where the contract says Ready, a driver may still say "not yet" for a reason
of ``api.READINESS_GATE_REASONS`` (OpenShell's Podman driver waits for a health check, PR 2116's
Docker driver for its supervisor), but never an error and never another instance."""

from __future__ import annotations

import pytest

from pytest_sandbox_conformance.api import Condition, Snapshot
from pytest_sandbox_conformance.plugin.collect import catalog_dir
from pytest_sandbox_conformance.run.checks import REGISTRY, View
from pytest_sandbox_conformance.run.gateway import Gateway
from pytest_sandbox_conformance.run.oracle import Expected
from pytest_sandbox_conformance.scenario import load_file

SID = "s1"
A = "a" * 64


def _view(reported: Condition, instance: str = A) -> View:
    scenario = load_file(catalog_dir() / "overlap.yaml")[0]
    expected = {SID: Expected(SID, "authoritative", A, Condition("True", "ContainerRunning"),
                              ("OWN-2",), (A,))}
    snaps = {SID: Snapshot(SID, "box", "ns", instance, reported)}
    return View(scenario, scenario.expect, Gateway(), {"A": A}, {"s1": SID}, expected=expected,
                snapshots=snaps)


def _failures(view: View) -> list:
    return [f for name in ("instance-matches-contract", "readiness-matches-contract")
            for f in REGISTRY[name].fn(view)]


@pytest.mark.parametrize("reason", ["HealthCheckStarting", "DependenciesNotReady",
                                    "SupervisorNotConnected", "ContainerStarting"])
def test_a_readiness_gate_still_open_is_no_failure_where_the_contract_says_ready(reason):
    # OWN-2: the instance is the authority; only readiness differs, by a gate the driver adds.
    assert _failures(_view(Condition("False", reason))) == []


@pytest.mark.parametrize("reason", ["ContainerExited", "ContainerIdentityConflict", "Starting"])
def test_other_not_ready_reasons_still_fail_where_the_contract_says_ready(reason):
    failures = _failures(_view(Condition("False", reason)))
    assert [f.check for f in failures] == ["readiness-matches-contract"]


def test_a_gate_does_not_excuse_another_instance():
    failures = _failures(_view(Condition("False", "HealthCheckStarting"), instance="b" * 64))
    assert [f.check for f in failures] == ["instance-matches-contract"]
