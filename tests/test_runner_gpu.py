"""OWN-19 on the engine: an adopted GPU replacement must really carry its GPU request."""

from dataclasses import replace
from pathlib import Path

import pytest

from pytest_sandbox_conformance.adapters.reference import factory
from pytest_sandbox_conformance.plugin.collect import catalog_dir
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.run.runner import ConformanceFailure, RunConfig, play
from pytest_sandbox_conformance.scenario import load_file
from pytest_sandbox_conformance.exploration.schedule import pinned


class DroppingEngine(FakeEngine):
    """Accepts GPU requests and silently drops them, as Podman 4.3's Docker-compatible API does."""

    def create(self, spec):
        return super().create(replace(spec, device_requests=(), runtime=None))


def _gpu_scenario():
    return next(s for s in load_file(Path(catalog_dir()) / "gpu.yaml")
                if s.id == "gpu-replacement-gpus")


def test_gpu_replacement_passes_where_the_request_is_in_effect(tmp_path) -> None:
    sc = _gpu_scenario()
    for sched in pinned(sc):
        play(sc, sched, RunConfig(driver=factory, engine=FakeEngine, state_root=tmp_path))


def test_a_dropped_gpu_request_fails_own_19(tmp_path) -> None:
    # OWN-19: "once adopted, the sandbox's instance is the container that really has the GPU".
    sc = _gpu_scenario()
    with pytest.raises(ConformanceFailure) as info:
        play(sc, pinned(sc)[0], RunConfig(driver=factory, engine=DroppingEngine,
                                           state_root=tmp_path))
    assert info.value.requirements == ["OWN-19"]
    assert "no GPU request in effect" in info.value.render()


def test_gpu_seen_inside_reads_nvidia_smi_devices_and_the_hook_variable() -> None:
    # OWN-19: what the live check accepts as "the GPU request is in effect" inside a container.
    from pytest_sandbox_conformance.live.gpu import gpu_seen_inside

    assert gpu_seen_inside("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\n")
    assert gpu_seen_inside("device /dev/nvidia0\n")
    assert gpu_seen_inside("NVIDIA_VISIBLE_DEVICES=all\n")
    assert not gpu_seen_inside("")
    assert not gpu_seen_inside("NVIDIA_VISIBLE_DEVICES=void\n")
    assert not gpu_seen_inside("NVIDIA_VISIBLE_DEVICES=\n")
