"""Figures: a live run whose engine dies or stops answering, and runs that are killed or cancelled.

    sudo python benchmarks/engine_outage.py [--code DIR] [--engine-timeout S] [--run-timeout 300]

Starts a private dockerd (``tests/test_live_outage.py``'s: its own socket, data and exec root,
vfs storage, no bridge), imports the image, and for each fault runs the pinned catalog (the
reference driver) on it, injecting the fault 6 s into the run:

* ``engine SIGKILL`` / ``engine SIGSTOP``: output lines, seconds from the fault to the end,
  exit status, the verdict line, FAILED and ERROR lines;
* ``suite SIGKILL`` / ``suite SIGINT+SIGTERM``: (the engine stays up);

then, the engine answering again, what the run left (its containers, its lock file, state
folders) and what is left after the next session's sweep (``--collect-only``). ``--code DIR``
runs another checkout's package (first on ``PYTHONPATH``) for the figures before a change; then
``--sandbox-engine-timeout`` is given only with ``--engine-timeout``. Needs root and dockerd.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_live_outage import PrivateDockerd  # noqa: E402

from pytest_sandbox_conformance.engines.image import make_busybox_image  # noqa: E402
from pytest_sandbox_conformance.live import NAMESPACE_PREFIX, SESSION_LABEL, default_lock_dir  # noqa: E402
from reference_driver.naming import LabelKeys  # noqa: E402

NS = LabelKeys().namespace
FAULT_AT = 6.0


def leftovers(daemon: PrivateDockerd, session: str, state: Path) -> tuple[int, bool, int]:
    with daemon.engine() as engine:
        found = {c.id for c in engine.list({SESSION_LABEL: session})}
        found |= {c.id for c in engine.list({NS: None})
                  if c.labels[NS].startswith(f"{NAMESPACE_PREFIX}-{session}-")}
    folders = [p for p in state.glob("sbx-s*")] if state.is_dir() else []
    return len(found), (default_lock_dir() / f"{session}.lock").exists(), len(folders)


def one(fault: str, daemon: PrivateDockerd, args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state"
        path = ([str(args.code)] if args.code else []) + [str(ROOT)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
               "no:hypothesispytest", "--sandbox-driver=reference", "--sandbox-engine=docker",
               f"--sandbox-engine-url={daemon.url}", "--sandbox-gpu=off",
               f"--sandbox-state-dir={state}"]
        if args.engine_timeout or not args.code:
            cmd.append(f"--sandbox-engine-timeout={args.engine_timeout or 30}")
        out = Path(folder) / "out.txt"
        with out.open("w") as sink:
            proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=sink,
                                    stderr=subprocess.STDOUT)
            time.sleep(FAULT_AT)
            faulted = time.monotonic()
            target, sig = fault.split(" ", 1)
            if target == "engine":
                os.kill(daemon.proc.pid, getattr(signal, sig))
            elif sig == "SIGINT+SIGTERM":
                proc.send_signal(signal.SIGINT)
                time.sleep(0.2)
                proc.send_signal(signal.SIGTERM)
            else:
                proc.send_signal(getattr(signal, sig))
            try:
                rc: int | str = proc.wait(timeout=args.run_timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)  # as a CI job's timeout would
                proc.wait()
                rc = f"none: did not end within {args.run_timeout:.0f} s (SIGTERM)"
            took = time.monotonic() - faulted
        text = out.read_text(errors="replace")
        lines = text.splitlines()
        verdict = next((line for line in lines if line.startswith("driver reference")), "-")
        m = re.search(r"session ([0-9a-f]{8});", text)
        session = m.group(1) if m else "?"
        if target == "engine":
            if sig == "SIGSTOP":
                os.kill(daemon.proc.pid, signal.SIGCONT)
            else:
                daemon.start()
        time.sleep(1)
        left = leftovers(daemon, session, state)
        subprocess.run(cmd + ["--collect-only", "-q"], cwd=folder, env=env,
                       capture_output=True, timeout=120)
        after = leftovers(daemon, session, state)
        print(f"{fault}: exit {rc}, {len(lines)} output lines, {took:.1f} s after the fault; "
              f"{sum(line.startswith('FAILED') for line in lines)} FAILED, "
              f"{sum(line.startswith('ERROR') for line in lines)} ERROR; {verdict}")
        print(f"  left by the run: {left[0]} container(s), lock file {'yes' if left[1] else 'no'}"
              f", {left[2]} state folder(s); after the next session: {after[0]} container(s), "
              f"lock file {'yes' if after[1] else 'no'}, {after[2]} state folder(s)")
        with daemon.engine() as engine:  # the next fault starts clean
            engine.remove_all([c.id for c in engine.list()], force=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", type=Path)
    ap.add_argument("--engine-timeout", type=float)
    ap.add_argument("--run-timeout", type=float, default=300.0)
    ap.add_argument("--only", help="one fault, e.g. 'engine SIGKILL'")
    args = ap.parse_args()
    daemon = PrivateDockerd()
    try:
        daemon.start()
        with daemon.engine() as engine:
            make_busybox_image(busybox=None, engine=engine)
        for fault in ("engine SIGKILL", "engine SIGSTOP", "suite SIGKILL",
                      "suite SIGINT+SIGTERM"):
            if args.only in (None, fault):
                one(fault, daemon, args)
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
