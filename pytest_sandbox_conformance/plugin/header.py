"""The session's lines in pytest's header (for :class:`~.suite.Suite`): the driver, its
capabilities, the engine, the schedules, what was swept; and the live engine's line (its image,
session id and GPU request styles), printed even with -q, for it names the containers to look
for."""

from __future__ import annotations

__all__ = ["live_header", "report_header"]


def report_header(suite) -> list[str]:
    """The lines of ``pytest_report_header``."""
    s = suite.settings
    lines = [f"sandbox conformance: driver {suite.driver_label} "
             f"(capabilities: {', '.join(sorted(suite.driver_caps)) or 'none'}), engine "
             f"{s.engine}, schedules {s.mode}"
             + (f" {s.random_n} seed {s.random_seed}" if s.mode in ("random", "generate")
                else "")
             + (f" (a sample of {s.max_schedules} above {s.max_schedules} schedules)"
                if s.mode == "exhaustive" else "")
             + (f", {suite.concurrency} at once" if suite.concurrency > 1 else "")]
    if suite.timing == "approximate":
        lines.append("sandbox conformance: TIMING APPROXIMATE: the driver polls on its own "
                     "clock and the suite waits for it (no observation gate); schedules are "
                     "not exact and results are marked timing-approximate")
    if suite.state_folders.swept:
        lines[0] += (f"; swept {len(suite.state_folders.swept)} state folder(s) of dead "
                     "processes")
    if suite.live is not None:
        lines.append(live_header(suite))
    return lines


def live_header(suite) -> str:
    """The live engine's line: engine, image, session id, GPU request styles, what was swept."""
    s = suite.settings
    gpu = "; ".join(suite.gpu_styles[k] for k in sorted(suite.gpu_styles)) or "none"
    if suite.gpu_emulated and suite.gpu_styles:
        gpu += " -- EMULATED: no real GPU, GPU items are labelled gpu-emulated"
    swept = ""
    if suite.swept is not None:
        swept = (f"; swept {len(suite.swept.removed)} leftover container(s) of dead sessions"
                 + (f" ({', '.join(suite.swept.sessions)}; {suite.swept.locks} lock file(s))"
                    if suite.swept.sessions else "")
                 + (f", left {suite.swept.foreign} of other live sessions alone"
                    if suite.swept.foreign else ""))
    return (f"live engine {s.engine} at {getattr(suite.engine, 'base_url', '?')}, image "
            f"{s.image}, session {suite.live.session}; GPU request styles: {gpu}{swept}")
