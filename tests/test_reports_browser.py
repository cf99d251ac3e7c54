"""The HTML report looked at in a real browser: headless Chromium (Debian's ``chromium``;
``.ci/setup`` installs it where apt is available) opens the report of a label-trusting driver's
run, the test asks the live DOM what a person would look for, takes a screenshot of the
``overlap-backup-first`` failure and checks that the page fetched nothing.

``SANDBOX_CONFORMANCE_SCREENSHOT=docs/img/overlap-backup-first.png`` also writes the screenshot
there (the one ``docs/reports.md`` shows).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from chromium import Chromium, find_chromium

TESTS = Path(__file__).resolve().parent
PLUGINS = ("-p", "sandbox_conformance", "-p", "no:hypothesispytest")
ITEM = "sandbox-catalog/overlap.yaml::overlap-backup-first[backup-first]"

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="needs headless Chromium (Debian: apt-get install chromium; .ci/setup installs it)")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The HTML and JSON reports of the pinned catalog against ``trusts_labels_last_wins``."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("html-report")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")])))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *PLUGINS, "-p", "no:cacheprovider", "-q",
         "--sandbox-driver=broken_drivers:trusts_labels_last_wins",
         "--sandbox-html=report.html", "--sandbox-report=report.json"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    return folder / "report.html", json.loads((folder / "report.json").read_text())


def _failure_id(browser: Chromium) -> str:
    found = browser.eval(f"(document.querySelector('article.failure[data-item=\"{ITEM}\"]')"
                         " || {}).id")
    assert found, f"no failure drawn for {ITEM}"
    return found


def test_the_failure_is_drawn_as_swimlanes(page, tmp_path) -> None:
    html, report = page
    failure = next(e for s in report["scenarios"].values() for k, e in s["items"].items()
                   if k == ITEM)["failure"]
    with Chromium.start() as browser:
        browser.open(html, width=1400, height=1000)
        # Nothing was fetched but the page itself.
        assert [u for u in browser.requests() if not u.startswith(("file:", "data:"))] == []
        fid = _failure_id(browser)
        sel = f"#{fid}"
        heads = browser.eval(f"[...document.querySelectorAll('{sel} table.lanes thead th')]"
                             ".map(t => t.textContent)")
        assert heads == ["moment", "Story (outside actions)", "Engine (containers)",
                         "Driver polls", "Driver reports", "Contract expects"]
        rows = browser.eval(f"document.querySelectorAll('{sel} table.lanes tbody tr:not(.diag)')"
                            ".length")
        assert rows == len([m for m in failure["timeline"] if m["kind"] != "diagnostic"])
        # The story lane has the steps, the engine lane the containers, the poll lane the order.
        story = browser.eval(f"[...document.querySelectorAll('{sel} tr.step td.l-story')]"
                             ".map(t => t.textContent)")
        assert story[3] == "step 4: clone A as=B name=canonical gpu=cdi"
        engine = browser.eval(f"[...document.querySelectorAll('{sel} tr.observe')][0]"
                              ".querySelector('td.l-engine').textContent")
        assert "openshell-box-s1-nemoclaw-gpu-backup" in engine and "exited" in engine
        poll = browser.eval(f"document.querySelector('{sel} tr.observe td.l-poll').textContent")
        assert poll.startswith("poll 1 · oldest first") and "lists A, B" in poll
        # The first divergence: marked once, on the first report that disagrees.
        first = next(m for m in failure["timeline"]
                     if m["kind"] == "finding" or m.get("data", {}).get("agrees") is False)
        marked = browser.eval(f"[...document.querySelectorAll('{sel} [data-first-divergence]')]"
                              ".map(r => [r.id, r.innerText, r.getBoundingClientRect().height])")
        assert len(marked) == 1
        row_id, text, height = marked[0]
        assert row_id == f"{fid}-m{first['seq']}" and height > 0
        assert "first divergence" in text and "the driver disagrees" in text
        assert "Ready=True ContainerRunning" in text and "ContainerReplacementPending" in text
        # "jump to the first divergence" scrolls it into view.
        browser.eval(f"document.querySelector('{sel} a[href=\"#{row_id}\"]').click()")
        time.sleep(0.2)
        top = browser.eval(f"document.getElementById('{row_id}').getBoundingClientRect().top")
        # In view: its top at the viewport's top (within a pixel: the layout is fractional, and a
        # scrolled-to anchor may sit a sub-pixel above 0) or below it.
        assert -1 < top < 1000
        # The replay command, and a button that copies it.
        replay = browser.eval(f"document.getElementById('{fid}-replay').textContent")
        assert replay == failure["replay"]
        # The pinned backup-first (two oldest-first polls) reduced to the one poll that still
        # fails it (--sandbox-reduce=auto on the fake engine): its id replays it.
        assert "'--sandbox-schedule=overlap-backup-first@1-0.0.0.o.0'" in replay
        browser.eval(f"document.querySelector('{sel} button.copy').click()")
        time.sleep(0.3)
        copied = browser.eval(f"[document.querySelector('{sel} button.copy').textContent, "
                              "String(window.getSelection())]")
        assert copied[0] == "Copied" or copied[1] == replay, copied
        # The broken requirement's text, from the contract bundled in the package.
        assert "The handoff shape" in browser.eval(f"document.querySelector('{sel} "
                                                    "details.req .contract').textContent")
        # The screenshot: the failure from its title to the findings after the divergence.
        browser.eval("window.getSelection().removeAllRanges(); window.scrollTo(0, 0)")
        box = browser.eval(f"(() => {{ const a = document.querySelector('{sel}')"
                           ".getBoundingClientRect(); const d = document.getElementById("
                           f"'{row_id}').getBoundingClientRect(); return [a.left + scrollX, "
                           "a.top + scrollY, a.width, d.bottom - a.top]; })()")
        clip = {"x": box[0] - 6, "y": box[1] - 6, "width": box[2] + 12, "height": box[3] + 150}
        shot = browser.screenshot(tmp_path / "overlap-backup-first.png", clip=clip)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    target = os.environ.get("SANDBOX_CONFORMANCE_SCREENSHOT")
    if target:
        Path(target).write_bytes(data)


def test_the_matrix_and_the_header_read_right(page) -> None:
    html, report = page
    with Chromium.start() as browser:
        browser.open(html, width=1400, height=1000)
        assert browser.eval("document.getElementById('verdict').textContent") == \
            report["verdict_text"]
        rows = browser.eval("document.querySelectorAll('table.matrix tbody tr').length")
        assert rows == 20
        # A broken requirement's cell links to the failure that broke it, with its reason.
        cell = browser.eval("(() => { const r = [...document.querySelectorAll('table.matrix "
                            "tbody tr')][3]; const a = r.querySelector('td.c-failed a'); "
                            "return [r.querySelector('th').textContent, a.title, "
                            "a.getAttribute('href')]; })()")
        assert cell[0].startswith("OWN-4") and "broke it" in cell[1]
        target = cell[2].lstrip("#")
        assert browser.eval(f"document.getElementById('{target}').tagName") == "ARTICLE"
        # Every scenario is listed, with the schedules it played.
        listed = browser.eval("document.querySelectorAll('table.scenarios tbody tr').length")
        assert listed == len(report["scenarios"])
