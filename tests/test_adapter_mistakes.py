"""What an adapter author gets for each mistake made while writing an adapter from
docs/adapters.md: a clear message, never a traceback, an INTERNALERROR or a hang.

Each case is a module ``mistake.py`` with a ``factory``, built on ``good.py``'s ``Good``: a plain
class (no DriverAdapter base, no ``labels``, ``describe``, ``diagnostics`` or ``close``) around the
reference driver, which passes. The suite runs it on the fake engine over three small scenarios.
A case expects one of:

* ``usage``: refused at start-up, exit status 4, one ``ERROR: --sandbox-driver=...`` usage error
  whose lines name every problem (the fragment among them);
* ``failed``: the scenarios fail with check ``adapter`` (a wrong type) or ``driver`` (it raised
  or never returned), the fragment in the failure, with the timeline and the replay command, and
  the session goes on;
* ``passes``: what the docs call optional is optional.

``test_the_figures`` counts them for docs/reliability.md.
"""

from __future__ import annotations

import time

import pytest

from test_plugin import BASIC, NEEDS_RESTART, scenarios, suite  # noqa: F401 - suite is a fixture

GOOD = '''
from reference_driver import ReferenceDriver


class Good:
    name = "good"

    def __init__(self, ctx):
        self.ctx = ctx
        self.driver = ReferenceDriver(ctx.engine, ctx.state_dir, namespace=ctx.namespace,
                                      image=ctx.image)
        self.watcher = self.driver.watch()

    def create(self, spec):
        return self.driver.create(spec)

    def delete(self, sandbox_id, name):
        return self.driver.delete(sandbox_id, name)

    def observe(self):
        self.driver.observe()

    def snapshot(self, sandbox_id):
        return self.driver.snapshot(sandbox_id)

    def events(self):
        return self.watcher.drain()


class Restartable(Good):
    capabilities = frozenset({"restart"})

    def restart(self):
        self.watcher.close()
        self.driver = self.driver.restart()
        self.watcher = self.driver.watch()


def without(cls, *names):
    """``cls`` without the members ``names`` (a class that never had them)."""
    members = {k: v for k, v in vars(cls).items()
               if k not in names and (not k.startswith("__") or k == "__init__")}
    return type(cls.__name__, cls.__bases__, members)
'''

DELETE = """
id: delete-one
title: One sandbox, created and deleted
requirements: [OWN-14]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - delete: s1
expect:
  sandboxes:
    s1: {tracked: false}
  containers: []
  deleted: [s1]
"""

HEAD = "from good import Good, Restartable, without\n"
#: factory for a class named Bad
BAD = "\n\ndef factory(ctx):\n    return Bad(ctx)\n"


def bad(body: str) -> str:
    return HEAD + "import time\nfrom dataclasses import replace\n" \
        "from pytest_sandbox_conformance.api import Condition, Snapshot\n\n\n" \
        f"class Bad(Good):\n{body}" + BAD


CASES = [
    # -- refused at start-up: the factory --------------------------------------------------------
    ("factory-takes-nothing", HEAD + "def factory():\n    return Good(None)\n",
     "usage", "factory() is not an adapter factory: a factory takes one argument, the "
              "DriverContext"),
    ("factory-takes-two", HEAD + "def factory(ctx, extra):\n    return Good(ctx)\n",
     "usage", "factory(ctx, extra) is not an adapter factory: a factory takes one argument"),
    ("factory-returns-none", HEAD + "def factory(ctx):\n    Good(ctx)\n",
     "usage", "the factory returned None: it must return the adapter"),
    ("factory-returns-the-class", HEAD + "def factory(ctx):\n    return Good\n",
     "usage", "the factory returned the class Good, not an instance"),
    ("init-raises", bad("    def __init__(self, ctx):\n        raise KeyError('token')\n"),
     "usage", "the factory raised KeyError: 'token' (at mistake.py:"),
    ("init-hangs", bad("    def __init__(self, ctx):\n        time.sleep(120)\n"),
     "usage", "the factory (on the fake engine) did not return within 1 s (the limit for "
              "starting or stopping a driver)"),
    ("factory-capabilities-string",
     HEAD + "def factory(ctx):\n    return Good(ctx)\n\n\nfactory.capabilities = 'restart'\n",
     "usage", "the factory's capabilities is the string 'restart'"),
    # -- the probe -------------------------------------------------------------------------------
    ("probe-returns-none", HEAD + "def factory(ctx):\n    return Good(ctx)\n\n\n"
     "factory.probe = lambda options, engine: None\n",
     "usage", "probe(options, engine) returned None: it must return a DriverProbe"),
    ("probe-takes-one", HEAD + "def factory(ctx):\n    return Good(ctx)\n\n\n"
     "def probe(options):\n    pass\n\n\nfactory.probe = probe\n",
     "usage", "probe has the signature (options); it must take (options, engine)"),
    ("probe-raises", HEAD + "def factory(ctx):\n    return Good(ctx)\n\n\n"
     "def probe(options, engine):\n    return options['socket']\n\n\nfactory.probe = probe\n",
     "usage", "probe(options, 'fake') raised KeyError: 'socket' (at mistake.py:"),
    ("probe-capabilities-string",
     HEAD + "from pytest_sandbox_conformance.adapters import DriverProbe\n\n\n"
     "def factory(ctx):\n    return Good(ctx)\n\n\n"
     "factory.probe = lambda options, engine: DriverProbe('restart', 'x')\n",
     "usage", "the probe's capabilities is the string 'restart'"),
    # -- the instance's members ------------------------------------------------------------------
    *[(f"no-{m}", HEAD + f"Bad = without(Good, {m!r})" + BAD, "usage",
       f"Good has no {m}() (required)")
      for m in ("create", "delete", "observe", "snapshot", "events")],
    ("create-not-callable", bad("    create = 'soon'\n"),
     "usage", "Bad.create is 'soon', not a method"),
    ("capabilities-string", bad("    capabilities = 'restart'\n"),
     "usage", "Bad.capabilities is the string 'restart', which would read as its letters"),
    ("capabilities-unknown", bad("    capabilities = {'restarts'}\n"),
     "usage", "unknown capabilities ['restarts']"),
    ("restart-declared-not-written", bad("    capabilities = {'restart'}\n"),
     "usage", "Bad declares the 'restart' capability but has no restart() of its own"),
    ("journal-faults-declared-not-written", bad("    capabilities = {'journal-faults'}\n"),
     "usage", "declares the 'journal-faults' capability but has no journal_fault()"),
    ("labels-a-dict", bad("    labels = {'namespace': 'x'}\n"),
     "usage", "Bad.labels is {'namespace': 'x'}: give a reference_driver.naming.LabelKeys"),
    ("name-not-a-string", bad("    name = 42\n"), "usage", "Bad.name is 42, not a string"),
    ("timing-unknown", bad("    timing = 'fast'\n"),
     "usage", "Bad.timing is 'fast': 'exact' or 'approximate'"),
    # -- what a fresh instance answers -----------------------------------------------------------
    ("describe-returns-none", bad("    def describe(self):\n        print(self.name)\n"),
     "usage", "describe() returned None: a string"),
    ("events-returns-none", bad("    def events(self):\n        self.watcher.drain()\n"),
     "usage", "events() returned None: a list of events"),
    ("events-is-a-generator", bad("    def events(self):\n        yield from self.watcher.drain()\n"),
     "usage", "events() returned <generator object"),
    ("snapshot-returns-a-dict", bad("    def snapshot(self, sandbox_id):\n        return {}\n"),
     "usage", "snapshot('sbx-validate-unknown') returned {}, which is not a Snapshot"),
    ("diagnostics-returns-a-string", bad("    def diagnostics(self):\n        return 'none'\n"),
     "usage", "diagnostics() returned 'none': a list of strings"),
    ("events-raises", bad("    def events(self):\n        return self.queue\n"),
     "usage", "events() raised AttributeError: 'Bad' object has no attribute 'queue'"),
    # -- at run time: what it returns ------------------------------------------------------------
    ("create-returns-the-id",
     bad("    def create(self, spec):\n        return self.driver.create(spec).instance_id\n"),
     "failed", "[] adapter: create('s1') returned '"),
    ("create-returns-a-dict",
     bad("    def create(self, spec):\n        s = self.driver.create(spec)\n"
         "        return {'instance_id': s.instance_id}\n"),
     "failed", "[] adapter: create('s1') returned {'instance_id': '"),
    ("snapshot-a-dict-once-tracked",
     bad("    def snapshot(self, sandbox_id):\n        s = self.driver.snapshot(sandbox_id)\n"
         "        return None if s is None else {'ready': s.ready.status}\n"),
     "failed", "[] adapter: snapshot('s1') returned {'ready': 'True'}, which is not a Snapshot"),
    ("condition-status-yes",
     bad("    def snapshot(self, sandbox_id):\n        s = self.driver.snapshot(sandbox_id)\n"
         "        return s and replace(s, ready=Condition('Yes', s.ready.reason))\n"),
     "failed", "[] adapter: snapshot('s1') returned a Snapshot: its Ready condition has status "
               "'Yes': one of 'True', 'False', 'Unknown'"),
    ("ready-a-string",
     bad("    def snapshot(self, sandbox_id):\n        s = self.driver.snapshot(sandbox_id)\n"
         "        return s and replace(s, ready='True')\n"),
     "failed", "its ready is 'True', not a Condition(status, reason, message)"),
    ("instance-id-an-int",
     bad("    def snapshot(self, sandbox_id):\n        s = self.driver.snapshot(sandbox_id)\n"
         "        return s and replace(s, instance_id=1)\n"),
     "failed", "its instance_id is 1: a container id (str) or None"),
    ("snapshot-of-another-sandbox",
     bad("    def snapshot(self, sandbox_id):\n        s = self.driver.snapshot(sandbox_id)\n"
         "        return s and replace(s, sandbox_id='other')\n"),
     "failed", "it is the snapshot of sandbox 'other', not of 's1'"),
    ("events-of-dicts",
     bad("    def events(self):\n        return [{'type': e.__class__.__name__} "
         "for e in self.watcher.drain()]\n"),
     "failed", "events() returned a list whose item 0 is wrong: {'type': "),
    ("delete-returns-none",
     bad("    def delete(self, sandbox_id, name):\n        self.driver.delete(sandbox_id, name)\n"),
     "failed", "[] adapter: delete('s1', 'box') returned None: True or False"),
    # -- at run time: it raises or never returns -------------------------------------------------
    ("observe-raises", bad("    def observe(self):\n        raise TypeError('a bug')\n"),
     "failed", "[] driver: observe() raised TypeError: a bug (at mistake.py:"),
    ("create-raises", bad("    def create(self, spec):\n        return self.drive.create(spec)\n"),
     "failed", "[] driver: create('s1') raised AttributeError: 'Bad' object has no attribute "
               "'drive'"),
    ("observe-hangs", bad("    def observe(self):\n        time.sleep(30)\n"),
     "failed", "[] driver: observe() did not return within 1 s (the step timeout"),
    ("restart-raises",
     HEAD + "class Bad(Restartable):\n    def restart(self):\n        raise OSError('no')\n"
     + BAD, "failed", "[] driver: restart() raised OSError: no (at mistake.py:"),
    # -- optional is optional --------------------------------------------------------------------
    ("plain-class-no-optional-members", HEAD + "def factory(ctx):\n    return Good(ctx)\n",
     "passes", ""),
    ("subclass-without-describe-or-close",
     "from pytest_sandbox_conformance.adapters import DriverAdapter\n" + HEAD
     + "Bad = type('Bad', (DriverAdapter,), {k: v for k, v in vars(Good).items() "
       "if not k.startswith('__') or k == '__init__'})\n" + BAD, "passes", ""),
    ("restart-written-not-declared",
     HEAD + "Bad = type('Bad', (Good,), {'restart': Restartable.restart})\n" + BAD, "passes", ""),
    ("capabilities-a-list",
     HEAD + "class Bad(Restartable):\n    capabilities = ['restart']\n" + BAD, "passes", ""),
]


def _run(pytester: pytest.Pytester, suite, monkeypatch, source: str) -> tuple[pytest.RunResult,
                                                                              float]:
    from pytest_sandbox_conformance.adapters import watchdog

    monkeypatch.setattr(watchdog, "START_TIMEOUT", 1.0)  # a hung factory costs 1 s here
    pytester.makepyfile(good=GOOD, mistake=source)
    pytester.syspathinsert()
    scenarios(pytester, basic=BASIC, delete=DELETE, restart=NEEDS_RESTART)
    started = time.monotonic()
    result = suite("--sandbox-driver=mistake:factory", "--sandbox-step-timeout=1",
                   "-p", "no:cacheprovider")
    return result, time.monotonic() - started


@pytest.mark.parametrize("source, expect, fragment", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_an_adapter_mistake_gets_a_clear_message(pytester: pytest.Pytester, suite, monkeypatch,
                                                 source: str, expect: str,
                                                 fragment: str) -> None:
    result, took = _run(pytester, suite, monkeypatch, source)
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    assert took < 20, f"took {took:.0f} s"
    if expect == "usage":
        assert result.ret == pytest.ExitCode.USAGE_ERROR, text
        errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
        assert len(errors) == 1, result.stderr.lines
        assert errors[0].startswith("ERROR: --sandbox-driver=mistake:factory: "), errors
        assert fragment in result.stderr.str(), result.stderr.str()
    elif expect == "failed":
        assert result.ret == pytest.ExitCode.TESTS_FAILED, text
        outcomes = result.parseoutcomes()
        assert outcomes.get("failed", 0) >= 1 and "errors" not in outcomes, outcomes
        assert fragment in text, text
        assert "timeline:" in text and "replay:" in text and "--sandbox-schedule=" in text
    else:
        assert result.ret == pytest.ExitCode.OK, text
        assert result.parseoutcomes().get("passed", 0) >= 3, text


def test_a_hung_observe_leaves_a_thread_and_the_session_goes_on(pytester: pytest.Pytester,
                                                               suite, monkeypatch) -> None:
    result, took = _run(pytester, suite, monkeypatch,
                        bad("    def observe(self):\n        time.sleep(30)\n"))
    # Every item that observes fails in about a step timeout, one after the other.
    result.assert_outcomes(failed=3, skipped=1)  # the restart scenario: Good cannot restart
    assert took < 15
    result.stdout.fnmatch_lines(["sandbox conformance: 3 adapter call(s) never returned; "
                                 "their threads were left behind (daemon threads):",
                                 "  adapter factory (basic [early]): observe() did not return "
                                 "within 1 s"])


def test_the_figures():
    """docs/reliability.md's table of adapter mistakes (kept true here)."""
    kinds = [c[2] for c in CASES]
    assert (len(kinds), kinds.count("usage"), kinds.count("failed"), kinds.count("passes")) == (
        47, 30, 13, 4)
