"""A story step the engine refuses ends the play with a StoryError, not a driver failure and not
a traceback; and the ``clone`` step copies the source's whole configuration.

On the fake engine: an armed create fault meets the clone, a step on a container the story
removed, a rename onto a taken name, a clone whose start fails. On Docker (``live``): a clone
whose bind source vanished after the driver made its container.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pytest_sandbox_conformance.adapters.reference import factory
from pytest_sandbox_conformance.engines.base import Mount
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.exploration.schedule import pinned
from pytest_sandbox_conformance.run.failure import ConformanceFailure, StoryError
from pytest_sandbox_conformance.run.runner import RunConfig, play
from pytest_sandbox_conformance.scenario import load_text

HANDOFF = """
id: {id}
title: A story the engine refuses
description: The GPU tool's handoff, with a step the engine cannot do.
requirements: [OWN-4]
profile: core
sandboxes:
  s1: {{name: box}}
story:
  - create: s1
    as: A
{steps}
expect:
  sandboxes:
    s1: {{instance: A, phase: Ready}}
  containers: [A]
"""


def scenario(steps: str, id_: str = "refused"):
    # Lint and collection refuse these stories before they run (the story's meaning,
    # scenario/meaning.py); the runtime refusal is for what no reading of the file foresees (a
    # real engine's, a driver's doing), so these tests load them without that stage.
    [sc] = load_text(HANDOFF.format(id=id_, steps=steps), f"{id_}.yaml", story=False)
    return sc


def play_on(sc, tmp_path, engine=FakeEngine, driver=factory):
    return play(sc, pinned(sc)[0], RunConfig(driver=driver, engine=engine, state_root=tmp_path))


def refused(sc, tmp_path, **kw) -> StoryError:
    with pytest.raises(StoryError) as info:
        play_on(sc, tmp_path, **kw)
    return info.value


def test_an_armed_create_fault_that_meets_the_clone_is_a_story_error(tmp_path):
    sc = scenario("""  - stop: A
  - rename: A
    to: backup
  - engine_fault: create
  - clone: A
    as: B
""")
    err = refused(sc, tmp_path)
    assert not isinstance(err, ConformanceFailure)
    assert err.kind == "story"
    assert (err.step.index, err.step.action, err.status) == (4, "clone", 500)
    assert err.message == "injected failure of create"
    text = err.render()
    assert "step 5 (clone A as=B, refused.yaml:16) was refused by the engine (500):" in text
    assert "  injected failure of create" in text
    assert "an error, not a failure of the driver" in text
    assert "Traceback" not in text
    # The timeline so far, ending with the refusal.
    assert "step 3: rename A to=backup" in text and "replay:" in text
    [moment] = [m for m in err.timeline if m.kind == "refused"]
    assert moment.data["status"] == 500 and moment.data["action"] == "clone"
    assert err.summary().startswith("refused [every-step] step 5 (clone A as=B) was refused")


def test_a_step_on_a_container_the_story_removed_names_the_removing_step(tmp_path):
    sc = scenario("""  - remove: A
  - stop: A
""")
    err = refused(sc, tmp_path)
    assert err.status == 404
    assert err.context == "A was removed by step 2 (remove A)"
    assert "A was removed by step 2 (remove A)" in err.render()


def test_a_container_gone_without_the_story_removing_it_is_said_so(tmp_path):
    # The driver (here: someone else) removed A before the story's stop.
    class Vanishing(FakeEngine):
        def stop(self, container_id, timeout=0):
            self.remove(container_id, force=True)
            return super().stop(container_id, timeout)

    sc = scenario("""  - stop: A
""")
    err = refused(sc, tmp_path, engine=Vanishing)
    assert "is no longer on the engine and the story did not remove it" in err.context


def test_a_rename_onto_a_taken_name_is_a_story_error(tmp_path):
    sc = scenario("""  - run: s1
    as: X
    name: taken
    state: exited
  - rename: A
    to: taken
""")
    err = refused(sc, tmp_path)
    assert (err.step.action, err.status) == ("rename", 409)
    assert 'The container name "/taken" is already in use' in err.message


def test_a_clone_that_cannot_start_is_a_story_error_and_is_cleaned_up(tmp_path):
    made = []

    def engine():
        made.append(FakeEngine(device_drivers=()))  # no GPU support: a GPU clone cannot start
        return made[-1]

    sc = scenario("""  - stop: A
  - rename: A
    to: backup
  - clone: A
    as: B
    gpu: gpus
""")
    err = refused(sc, tmp_path, engine=engine)
    assert err.status == 500 and "could not select device driver" in err.message
    assert err.context.startswith("B was created (")
    assert "did not reach the state running" in err.context


def test_soft_failures_found_before_the_refusal_are_kept(tmp_path):
    from broken_drivers import deleted_on_missing  # noqa: PLC0415 - the tests' broken drivers

    sc = scenario("""  - remove: A
  - stop: A
""")
    err = refused(sc, tmp_path, driver=deleted_on_missing)
    assert err.failures, "the driver's Deleted on a missing container was recorded first"
    assert "OWN-10" in {r for f in err.failures for r in f.requirements}
    assert "failed before the step was refused:" in err.render()


OVERLAP = """
id: clone-copies
title: The handoff with a supervisor-style container
description: The GPU tool's overlapping handoff; the clone must be a copy of A.
requirements: [OWN-4]
profile: core
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - stop: A
  - rename: A
    to: backup
  - clone: A
    as: B
    name: canonical
expect:
  sandboxes:
    s1: {instance: B, phase: Ready}
  containers: [A, B]
"""


def supervisor_style(spec, source: Path):
    """What OpenShell's Docker driver adds to its containers: its supervisor as entrypoint from a
    bind-mounted file, capabilities, a security option, root, restart unless-stopped."""
    return replace(spec, entrypoint=("/opt/openshell/bin/openshell-sandbox",), command=(),
                   user="0", mounts=(Mount("/opt/openshell/bin/openshell-sandbox",
                                           source=str(source), read_only=True),),
                   cap_add=("SYS_ADMIN", "NET_ADMIN"), security_opt=("apparmor=unconfined",),
                   restart_policy="unless-stopped", env={**spec.env, "OPENSHELL_X": "1"})


def test_the_clone_step_copies_the_whole_configuration(tmp_path):
    supervisor = tmp_path / "supervisor"
    supervisor.write_text("#!/bin/sh\n")
    engines = []

    class SupervisorEngine(FakeEngine):
        def create(self, spec):
            if not spec.mounts:  # the driver's create; the story's clone has the mounts already
                spec = supervisor_style(spec, supervisor)
            return super().create(spec)

    def engine():
        engines.append(SupervisorEngine())
        return engines[-1]

    [sc] = load_text(OVERLAP, "clone-copies.yaml")
    result = play_on(sc, tmp_path, engine=engine)
    a, b = engines[0].snapshot()
    assert (a.name.endswith("-nemoclaw-gpu-backup-1760000000002"), b.state) == (True, "running")
    assert a.config() | {"hostname": ""} == b.config() | {"hostname": ""}
    assert b.entrypoint == ("/opt/openshell/bin/openshell-sandbox",)
    assert dict(a.labels) == dict(b.labels)
    text = result.timeline.render()
    assert "clone of A (" in text and "cap_add, entrypoint" in text, text


# -- on Docker ------------------------------------------------------------------------------------


@pytest.mark.live
def test_a_clone_whose_bind_source_vanished_is_a_story_error_on_docker(tmp_path):
    from test_engine_fake import RUN, _make_engine  # noqa: PLC0415 - skips without Docker

    _make_engine("docker").close()
    from pytest_sandbox_conformance.engines.docker import DockerEngine  # noqa: PLC0415

    supervisor = tmp_path / "supervisor"
    supervisor.write_text("#!/bin/sh\nexec sleep 2147483647\n")
    supervisor.chmod(0o755)
    tmp_path.chmod(0o755)

    class VanishingBindDocker(DockerEngine):
        """The driver's containers bind the supervisor; the file is gone after the story's stop
        (a host cleaned its cache while the sandbox was stopped)."""

        def create(self, spec):
            if not spec.mounts:
                spec = supervisor_style(spec, supervisor)
            return super().create(spec)

        def stop(self, container_id, timeout=0):
            super().stop(container_id, timeout)
            supervisor.unlink(missing_ok=True)

    run = f"story-{tmp_path.name[-8:]}"
    [sc] = load_text(OVERLAP, "clone-copies.yaml")
    cfg = RunConfig(driver=factory, engine=VanishingBindDocker, state_root=tmp_path,
                    ordered_lists=False, cleanup_engine=True, unique_sandbox_ids=True,
                    extra_labels={RUN: run})
    with pytest.raises(StoryError) as info:
        play(sc, pinned(sc)[0], cfg)
    err = info.value
    assert (err.step.action, err.status) == ("clone", 400)
    assert f"bind source path does not exist: {supervisor}" in err.message
    assert "Traceback" not in err.render()
    with DockerEngine() as docker:
        assert docker.list({RUN: run}) == []  # the run's containers were cleaned up


RECREATED = """
id: recreated
title: The sandbox's container is removed; the driver restarts before a replacement runs
requirements: [OWN-6, OWN-9]
profile: core
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - remove: A
  - run: s1
    as: B
expect:
  sandboxes:
    s1: {instance: B, phase: Ready}
  containers: [B]
schedules:
  restart-in-the-gap:
    after: {A: [observe], 2: [restart, observe], B: [observe, observe]}
"""


def test_a_step_refused_because_of_a_container_the_driver_made_is_the_drivers_failure(tmp_path):
    # OWN-6: a driver that "heals" the missing instance at its next poll makes a container under
    # the canonical name, and the story's `run` of B (a person re-creating the sandbox's
    # container) is refused for it: the driver's doing, not the story's. The reference driver
    # plays the same story to the end.
    from sensitivity_drivers import restart_recreates_missing

    [sc] = load_text(RECREATED, "recreated.yaml")
    (tmp_path / "ref").mkdir()
    (tmp_path / "broken").mkdir()
    assert play_on(sc, tmp_path / "ref").observations >= 3
    with pytest.raises(ConformanceFailure) as info:
        play_on(sc, tmp_path / "broken", driver=restart_recreates_missing)
    [made] = [f for f in info.value.failures if f.check == "containers-only-on-request"]
    assert made.requirements == ("OWN-6", "OWN-9")
    assert "that no create asked for" in made.message and "openshell-box-" in made.message
    assert "REFUSED by the engine (409)" in info.value.timeline.render()
