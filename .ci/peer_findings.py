"""CI: the project's Rust peer driver (tests/peer_driver, OpenShell's Docker driver's observable
behaviour on tonic and bollard) must be testable by the unchanged suite and fail with the
findings the real driver has (issue 9): the suite talks to it (no `driver` failure, no error),
timing is exact, and

* overlap: where the contract says ContainerReplacementPending the peer reports the exited backup
  (polling: the last-listed container wins, Error ContainerExited) or the clone (events: the
  clone's event wins, Ready);
* observed gap: where the contract says the instance is missing the peer reports no snapshot (it
  emitted Deleted);
* create: it sets no generation label (OWN-1), reported without stopping the story;
* a sandbox id a file name must encode (`team:box`, scenario delete-forgets-an-odd-sandbox-id):
  its create fails, because the token folder it bind-mounts is named by the raw id, and Docker
  reads the ':' as the bind's separator ("invalid volume specification"): the driver's failure,
  reported as such (check `driver`), not the suite's.

Usage: python3 .ci/peer_findings.py REPORT.json poll|events
"""

from __future__ import annotations

import json
import sys


def first_disagreement(item: dict) -> dict:
    for m in item["failure"]["timeline"]:
        if m["kind"] == "report" and not m["data"]["agrees"]:
            return m["data"]
    raise AssertionError(f"no report moment disagrees in {item['failure']['message']}")


def main(path: str, mode: str) -> None:
    r = json.load(open(path))
    assert r["driver"]["timing"] == "exact", r["driver"]
    assert r["verdict"] == "not conformant", r["verdict_text"]
    assert r["counts"]["error"] == 0 and r["counts"]["not_run"] == 0, r["counts"]
    items = {k: v for s in r["scenarios"].values() for k, v in s["items"].items()}
    failed = {k: v for k, v in items.items() if v["outcome"] == "failed"}
    driver_failures = {k: v for k, v in failed.items()
                       if any(f["check"] == "driver" for f in v["failure"]["failures"])}
    odd_id = {k for k in failed if "::delete-forgets-an-odd-sandbox-id[" in k}
    assert odd_id and set(driver_failures) == odd_id, \
        f"the suite could not talk to the peer: {sorted(set(driver_failures) - odd_id)}"
    for k in odd_id:
        msg = next(f["message"] for f in failed[k]["failure"]["failures"] if f["check"] == "driver")
        assert "CreateSandbox" in msg and "invalid volume specification" in msg, (k, msg)
    no_generation = [k for k, v in failed.items() if any(
        f["check"] == "create" and "generation label" in f["message"]
        for f in v["failure"]["failures"])]
    assert len(no_generation) == len(failed) - len(odd_id), \
        "every create must be reported for OWN-1"
    overlap = {k: v for k, v in failed.items() if "::overlap-replacement-first[" in k}
    gap = {k: v for k, v in failed.items() if "::gap-observed[" in k}
    assert overlap and gap, sorted(failed)
    for k, v in overlap.items():
        d = first_disagreement(v)
        assert d["contract"]["reason"] == "ContainerReplacementPending", (k, d)
        got = d["driver"]
        if mode == "poll":
            assert (got["instance"], got["reason"], got["phase"]) == (
                "A", "ContainerExited", "Error"), (k, got)
        else:
            assert (got["instance"], got["phase"]) == ("B", "Ready"), (k, got)
    for k, v in gap.items():
        d = first_disagreement(v)
        assert d["contract"]["outcome"] == "missing" and d["driver"] is None, (k, d)
    print(f"peer ({mode}): {r['verdict_text']}; {len(failed)} failed items, every create "
          f"reported for OWN-1, overlap and observed gap fail as OpenShell's driver does, "
          f"an id with ':' breaks its create")


if __name__ == "__main__":
    main(*sys.argv[1:])
