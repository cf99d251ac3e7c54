"""Which GPU request styles a real engine puts in effect, seen from inside a container.

For ``--gpus`` and CDI requests the suite starts a short-lived probe container of its own with the
request, through **testcontainers** (lifecycle, exec, removal), and looks inside: ``nvidia-smi -L``
where the image or the runtime provides it, else the ``/dev/nvidia*`` device nodes, and the
``NVIDIA_VISIBLE_DEVICES`` variable the NVIDIA hook sets. A request that is accepted but not in
effect (Podman's compatible API drops it silently) shows nothing there and does not count. A
style whose container has the variable but no device node is *emulated* (CI's private dockerd
with a stand-in hook): it counts for running GPU scenarios, and every report says "emulated".
The ``nvidia`` runtime, where the engine lists one, is probed the same way (``--runtime nvidia``
with ``NVIDIA_VISIBLE_DEVICES=all``): a runtime of that name that shows no device inside is
emulated, not real.

testcontainers' reaper container (Ryuk) is pulled from a registry, which these machines cannot
reach, so the suite turns it off unless ``TESTCONTAINERS_RYUK_DISABLED`` is set explicitly; the
probe containers carry the session label and are removed by the probe itself and, failing that,
by the session's sweep (``live.py``).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from ..engines.base import Engine

__all__ = ["LOOK_INSIDE", "GpuStyle", "gpu_seen_inside", "probe_gpu_styles", "read_inside"]

PROBE_LABEL = "sandbox-conformance.gpu-probe"

#: What a container sees of its GPU: nvidia-smi's list, the device nodes, and the variable the
#: NVIDIA hook sets in the main process's environment (read from /proc/1/environ, since an exec
#: does not inherit it). Run as a probe's main process or by exec in an adopted instance.
LOOK_INSIDE = ["sh", "-c",
               "command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L; "
               "for d in /dev/nvidia*; do [ -e \"$d\" ] && echo \"device $d\"; done; "
               "grep -a -o 'NVIDIA_VISIBLE_DEVICES=[^[:cntrl:]]*' /proc/1/environ || true"]


def read_inside(output: str) -> tuple[bool, str] | None:
    """Parse LOOK_INSIDE's output: None when no GPU is visible, else (real GPU?, evidence).

    A GPU listed by nvidia-smi or a ``/dev/nvidiaN`` node is real; the hook's variable alone
    (set, and not ``void``) is a GPU request in effect without a device: emulated.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    gpus = [line for line in lines if line.startswith("GPU ")]
    devices = [line.split(" ", 1)[1] for line in lines if line.startswith("device /dev/nvidia")]
    visible = next((line.split("=", 1)[1] for line in lines
                    if line.startswith("NVIDIA_VISIBLE_DEVICES=")), "")
    if gpus:
        return True, "; ".join(gpus)
    if any(d.rstrip("0123456789") == "/dev/nvidia" and d[-1].isdigit() for d in devices):
        return True, ", ".join(devices)
    if devices or visible not in ("", "void"):
        return False, ", ".join(devices) or f"NVIDIA_VISIBLE_DEVICES={visible}, no GPU device"
    return None


def gpu_seen_inside(output: str) -> bool:
    """Whether LOOK_INSIDE's output shows a GPU request in effect (real or emulated)."""
    return read_inside(output) is not None


@dataclass(frozen=True)
class GpuStyle:
    """One GPU request style the engine honours."""

    capability: str        # gpu-gpus | gpu-cdi | gpu-runtime
    real: bool             # a device node (or nvidia-smi's list) was seen inside
    evidence: str

    def __str__(self) -> str:
        return f"{self.capability} ({'real GPU' if self.real else 'EMULATED'}: {self.evidence})"


def _requests(docker: Any, runtimes: frozenset[str]) -> dict[str, dict[str, Any]]:
    """Each style's container settings (``docker run`` keyword arguments, ``env`` apart)."""
    styles: dict[str, dict[str, Any]] = {
        "gpu-gpus": {"device_requests": [docker.types.DeviceRequest(count=-1,
                                                                    capabilities=[["gpu"]])]},
        "gpu-cdi": {"device_requests": [docker.types.DeviceRequest(
            driver="cdi", device_ids=["nvidia.com/gpu=all"])]},
    }
    if "nvidia" in runtimes:
        styles["gpu-runtime"] = {"runtime": "nvidia", "env": {"NVIDIA_VISIBLE_DEVICES": "all"}}
    return styles


def _look_inside(engine: Engine, base_url: str, image: str, labels: dict[str, str],
                 request: dict[str, Any]) -> tuple[bool, str] | None:
    """Start a probe with ``request`` (container settings); None when it does not start or
    shows no GPU inside."""
    labels = dict(labels, **{PROBE_LABEL: secrets.token_hex(6)})
    try:
        return _run_probe(base_url, image, labels, request)
    finally:
        # A probe the engine refused to start was still created: remove whatever is left.
        engine.remove_all([c.id for c in engine.list({PROBE_LABEL: labels[PROBE_LABEL]})])


def _run_probe(base_url: str, image: str, labels: dict[str, str], request: dict[str, Any]
               ) -> tuple[bool, str] | None:
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    if os.environ.get("TESTCONTAINERS_RYUK_DISABLED") is None:
        testcontainers_config.ryuk_disabled = True
    # testcontainers builds its client with docker.from_env(): point DOCKER_HOST at our engine
    # for that moment only.
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = base_url
    try:
        # The main process looks: the NVIDIA hook's variables are in its environment (set in
        # the runtime spec), not in what a later exec would inherit.
        settings = dict(request)
        env = settings.pop("env", {})
        probe = (DockerContainer(image, command=list(LOOK_INSIDE))
                 .with_kwargs(network_mode="none", labels=labels, **settings))
        for key, value in env.items():
            probe = probe.with_env(key, value)
    finally:
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved
    try:
        probe.start()
    except Exception:  # refused by the engine: the style is not available
        return None
    try:
        wrapped = probe.get_wrapped_container()
        code = wrapped.wait(timeout=60).get("StatusCode", 1)
        stdout, _ = probe.get_logs()
    finally:
        probe.stop()  # removes the container
    text = stdout.decode(errors="replace") if isinstance(stdout, bytes) else str(stdout)
    return read_inside(text) if code == 0 else None


def probe_gpu_styles(engine: Engine, image: str, labels: dict[str, str]) -> list[GpuStyle]:
    """Every GPU request style ``engine`` puts in effect (see the module docstring)."""
    found: list[GpuStyle] = []
    runtimes = getattr(engine, "runtimes", lambda: frozenset())()
    base_url = getattr(engine, "base_url", None)
    if base_url is None:
        return found
    try:
        import docker
    except ImportError:
        return found
    for capability, request in _requests(docker, runtimes).items():
        seen = _look_inside(engine, base_url, image, labels, request)
        if seen is not None:
            found.append(GpuStyle(capability, seen[0], seen[1]))
    return found
