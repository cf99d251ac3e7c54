"""What a ``run`` or ``clone`` step changes in the container it makes, beside its name: the
generation label, the ``labels:`` edits, the GPU style, ``fails: start`` (``docs/scenarios.md``,
*Story steps*). Pure: the step and the driver's label keys in, spec fields and labels out.
"""

from __future__ import annotations

from typing import Mapping

from reference_driver.naming import LabelKeys

from ..engines.base import MISSING_EXECUTABLE, DeviceRequest
from ..scenario.model import Step

__all__ = ["GPU_STYLES", "RUN_COMMAND", "TRUNCATED", "WRONG_GENERATION", "gpu_edits",
           "label_edits", "start_edits"]

#: What the containers of ``run`` steps execute (images made by ``docker import`` have none).
RUN_COMMAND = ("sleep", "2147483647")
#: A generation value no driver ever makes.
WRONG_GENERATION = "00000000-0000-4000-8000-000000000000"
#: ``generation: truncated`` keeps this many characters (the first group of a UUID and more:
#: what a person copies from ``docker inspect`` output, cut short).
TRUNCATED = 12

GPU_STYLES = {
    "gpus": dict(device_requests=(DeviceRequest(count=-1, capabilities=(("gpu",),)),)),
    "cdi": dict(device_requests=(DeviceRequest(driver="cdi", device_ids=("nvidia.com/gpu=all",)),)),
    "runtime": dict(runtime="nvidia", env={"NVIDIA_VISIBLE_DEVICES": "all"}),
}


def label_edits(step: Step, keys: LabelKeys, sandbox_ids: Mapping[str, str],
                extra_labels: Mapping[str, str],
                generation_now: str | None) -> dict[str, str | None]:
    """The labels a ``clone`` or ``run`` step changes (a value sets the label, None drops it):
    its generation (``wrong``: a value no driver makes; ``missing``: removed; ``empty``: "";
    ``truncated``: the first :data:`TRUNCATED` characters of ``generation_now``, the one it
    would carry), its ``labels:`` under the driver's own ``keys`` (``sandbox-id`` as the id of
    the sandbox it names, from ``sandbox_ids``) and the session's own ``extra_labels``."""
    edits: dict[str, str | None] = {}
    generation = step.args.get("generation", "keep")
    if generation == "wrong":
        edits[keys.generation] = WRONG_GENERATION
    elif generation == "missing":
        edits[keys.generation] = None
    elif generation == "empty":
        edits[keys.generation] = ""
    elif generation == "truncated":
        edits[keys.generation] = (generation_now or WRONG_GENERATION)[:TRUNCATED]
    by_name = {"managed-by": keys.managed_by, "sandbox-id": keys.sandbox_id,
               "sandbox-name": keys.sandbox_name}
    for short, value in (step.args.get("labels") or {}).items():
        if short == "sandbox-id" and value is not None:
            value = sandbox_ids[value]
        edits[by_name[short]] = value
    edits.update(extra_labels)
    return edits


def start_edits(step: Step) -> dict:
    """``fails: start``: the entrypoint is an executable no image holds, so the engine creates
    the container and refuses to start it (as a ``docker run`` whose container cannot start
    leaves it: created)."""
    if step.args.get("fails") != "start":
        return {}
    return {"entrypoint": (MISSING_EXECUTABLE,), "command": ()}


def gpu_edits(step: Step) -> tuple[dict, dict[str, str]]:
    """The spec fields and environment the step's ``gpu:`` style adds."""
    style = step.args.get("gpu")
    if not style:
        return {}, {}
    extra = dict(GPU_STYLES[style])
    return extra, dict(extra.pop("env", {}))
