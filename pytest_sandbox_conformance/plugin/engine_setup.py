"""Opening the engine of a session (for :class:`~.suite.Suite`): what the fake engine offers, or
the real engine opened with its image, a live session claimed (``live/``), the leftovers of dead
sessions swept and the GPU request styles it honours probed; the clients for concurrent plays;
the base of the state folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..run.runner import memory_base
from .driver_setup import is_worker
from .options import Settings

__all__ = ["ENGINE_CAPABILITIES", "LiveStart", "engine_pool", "open_engine", "start_live",
           "state_base"]

#: What each engine offers scenarios.
ENGINE_CAPABILITIES = {
    "fake": frozenset({"list-order", "engine-faults", "states", "gpu-gpus", "gpu-cdi",
                       "gpu-runtime"}),
}


@dataclass
class LiveStart:
    """A real engine, opened: its client, the live session claimed on it, what the sweep of
    dead sessions removed (``None`` in an xdist worker: the controller sweeps), the GPU request
    styles in effect (capability: description) and the capabilities the engine offers."""

    engine: Any
    live: Any
    swept: Any
    capabilities: frozenset[str]
    gpu_styles: dict[str, str] = field(default_factory=dict)
    gpu_emulated: bool = False


def open_engine(settings: Settings):
    """A client of the session's real engine (the session's own, or another for a concurrent
    play)."""
    from ..live import open_engine as open_live

    s = settings
    return open_live(s.engine, s.engine_url, timeout=s.engine_call_timeout)


def start_live(config: pytest.Config, settings: Settings, gpu_emulated: bool) -> LiveStart:
    """Open the real engine, make sure the image is there, claim a session, sweep leftovers
    of dead sessions, and find out which GPU request styles the engine honours (``gpu_emulated``:
    what the environment already says of its GPUs)."""
    from reference_driver.naming import LabelKeys

    from ..engines.base import EngineError
    from ..live import LiveSession

    s = settings
    engine = None
    try:
        from ..engines.image import ensure_image

        engine = open_engine(s)
        ensure_image(engine, s.image)
    except (EngineError, ImportError) as exc:
        if engine is not None:
            engine.close()
        raise pytest.UsageError(f"--sandbox-engine={s.engine}: {exc}") from None
    worker = is_worker(config)
    if worker:
        session = config.workerinput["testrunuid"]  # type: ignore[attr-defined]
    else:
        session = getattr(config.option, "testrunuid", None)
        if session is None and config.pluginmanager.hasplugin("xdist"):
            import uuid

            session = uuid.uuid4().hex
            config.option.testrunuid = session  # shared with xdist's workers
    live = LiveSession(engine, LabelKeys().namespace, session)
    started = LiveStart(engine, live, None, frozenset(), gpu_emulated=gpu_emulated)
    if not worker:
        live.acquire()
    try:
        if not worker:
            started.swept = live.sweep()
        _probe_gpu(started, settings)
        return started
    except BaseException:
        live.release()
        engine.close()
        raise


def _probe_gpu(started: LiveStart, settings: Settings) -> None:
    """The engine's capabilities: ``live``, and the GPU request styles in effect unless
    ``--sandbox-gpu=off`` (``--sandbox-gpu=required`` refuses an engine with none)."""
    from ..live.gpu import probe_gpu_styles

    s = settings
    caps = {"live"}
    if s.gpu != "off":
        styles = probe_gpu_styles(started.engine, s.image, started.live.labels())
        started.gpu_styles = {g.capability: str(g) for g in styles}
        started.gpu_emulated = started.gpu_emulated or any(not g.real for g in styles)
        caps |= set(started.gpu_styles)
        if s.gpu == "required" and not started.gpu_styles:
            raise pytest.UsageError(
                f"--sandbox-gpu=required: engine {s.engine} at "
                f"{getattr(started.engine, 'base_url', '?')} puts no GPU request style in "
                "effect (--gpus, CDI, nvidia runtime); see docs/ci.md")
    started.capabilities = frozenset(caps)


def engine_pool(settings: Settings, engine):
    """Clients of the real engine for concurrent plays (one each, made on first use; the
    session's own ``engine`` is the first)."""
    from ..run.concurrent import EnginePool

    url = getattr(engine, "base_url", None)
    return EnginePool(lambda: open_engine(settings), first=engine,
                      where=settings.engine + (f" at {url}" if url else ""))


def state_base(settings: Settings) -> Path:
    """--sandbox-state-dir, else a memory-backed folder (/dev/shm) when there is one, else
    the system's temporary folder. Journals fsync on every change; on a memory-backed folder
    that costs nothing, and no check depends on real disk durability (crashes are injected,
    not suffered)."""
    if settings.state_dir is not None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        return settings.state_dir
    return memory_base()
