"""Runs CPython's own test.test_asyncio on evloop, unedited.

    python asyncio_suite.py [--timeout S] [--known FILE] [--report FILE] MODULE...

MODULE is a name under test.test_asyncio (``test_tasks``). Each module runs in a child process
of this script, with

- asyncio's default event-loop policy replaced by evloop's (``asyncio.run``,
  ``IsolatedAsyncioTestCase``, ``asyncio.new_event_loop()`` and every test that resets the
  policy then get evloop loops);
- one concrete class per loop-parametrised mixin of the module (``EventLoopTestsMixin`` and
  ``SubprocessTestsMixin``, ``BaseSockTestsMixin``, ``SendfileTestsBase``), whose
  ``create_event_loop()`` returns an evloop loop, in place of the module's own concrete classes
  (the stdlib's selector loops, one class each);
- a count of ``evloop.Loop.run_forever`` calls, so each test is recorded as having run on our
  loop or not (most of test_asyncio tests the stdlib's internals on mock loops: those are left
  out of the figures);
- a watchdog per test (``faulthandler``): a test that hangs is killed with its child, recorded
  as failed ("hang"), and the child is started again after it.

At the end it prints, for the tests that ran on evloop, the failures not in the known-failures
file, the known ones that passed, and ``N passed, N failed`` on a line of its own. The exit
status is 1 if a failure is not a known one.
"""

import argparse
import json
import os
import subprocess
import sys
import time



# ----- the child: one module, one test at a time ------------------------------------------

def child(package, module_name, skip, timeout, out_path):
    import asyncio
    import faulthandler
    import importlib
    import unittest

    import evloop

    runs = [0]
    original_run_forever = evloop.Loop.run_forever

    def counted_run_forever(self):
        runs[0] += 1
        return original_run_forever(self)

    evloop.Loop.run_forever = counted_run_forever
    made = [0]
    original_init = evloop.Loop.__init__

    def counted_init(self):
        made[0] += 1
        original_init(self)

    evloop.Loop.__init__ = counted_init
    asyncio.DefaultEventLoopPolicy = evloop.EventLoopPolicy
    asyncio.set_event_loop_policy(evloop.EventLoopPolicy())

    out = open(out_path, "a", buffering=1)

    def write(**record):
        out.write(json.dumps(record) + "\n")
        out.flush()

    try:
        module = importlib.import_module(f"{package}.{module_name}")
    except unittest.SkipTest as skip_reason:
        write(done=module_name, skipped=str(skip_reason))
        os._exit(0)
    # The loop-parametrised classes: test cases whose own `create_event_loop()` makes one of
    # the stdlib's loops (a selector loop, or on Windows a proactor one). One evloop class per distinct set of bases replaces them all.
    # (test_server's and test_sslproto's functional classes call theirs `new_loop()`.)
    families = {}
    for name, obj in list(vars(module).items()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)):
            continue
        factory = next((f for f in ("create_event_loop", "new_loop") if f in vars(obj)), None)
        if factory is not None:
            families.setdefault((obj.__bases__, factory), obj)
            delattr(module, name)
    for (_, factory), first in families.items():
        name = f"Evloop{first.__name__}"
        cls = type(name, (first,), {factory: lambda self: evloop.new_event_loop(),
                                    "__module__": module.__name__, "__qualname__": name})
        setattr(module, name, cls)

    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(module)

    def flatten(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t

    tests = [t for t in flatten(suite) if t.id() not in skip]
    rank = {"passed": 0, "skipped": 1, "failed": 2}

    class Result(unittest.TestResult):
        """One record per test; a class or module fixture's skip or error (reported without
        startTest) gets a record of its own."""

        def __init__(self):
            super().__init__()
            self._test = None

        def startTest(self, test):
            super().startTest(test)
            self._test = test
            self._outcome = "passed"
            self._detail = ""
            self._runs = runs[0]
            self._made = made[0]
            write(start=test.id())
            faulthandler.dump_traceback_later(timeout, exit=True)

        def _set(self, test, outcome, detail=""):
            if test is not self._test:
                # A fixture (setUpClass, setUpModule): it ran on evloop if a loop ran since.
                write(id=test.id(), outcome=outcome, ours=outcome == "failed",
                      detail=detail[-3000:])
                return
            if rank[outcome] >= rank[self._outcome]:
                self._outcome = outcome
                if detail:
                    self._detail = detail[-3000:]

        def addError(self, test, err):
            super().addError(test, err)
            self._set(test, "failed", self._exc_info_to_string(err, test))

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._set(test, "failed", self._exc_info_to_string(err, test))

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                self._set(test, "failed", self._exc_info_to_string(err, test))

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._set(test, "skipped", reason)

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._set(test, "failed", "unexpected success")

        def stopTest(self, test):
            faulthandler.cancel_dump_traceback_later()
            self._test = None
            write(id=test.id(), outcome=self._outcome, ours=runs[0] > self._runs,
                  made=made[0] > self._made, detail=self._detail)
            super().stopTest(test)

    # A suite (not the tests one by one) so that module and class fixtures run.
    unittest.TestSuite(tests).run(Result())
    write(done=module_name)
    out.close()
    # Leave without waiting for what a failed test left behind (a process pool's workers).
    os._exit(0)


# ----- the parent: children, the watchdog's aftermath, the summary -------------------------

def run_module(package, module_name, timeout, out_path):
    """Runs one module in children until it is done; returns its records."""
    records = {}
    hung = set()
    for _attempt in range(50):
        skip = set(records) | hung
        skip_path = out_path + ".skip"
        with open(skip_path, "w") as f:
            json.dump(sorted(skip), f)
        open(out_path, "w").close()
        proc = subprocess.run(
            [sys.executable, __file__, "--package", package, "--child", module_name,
             "--skip", skip_path,
             "--timeout", str(timeout), "--out", out_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        started = None
        done = False
        with open(out_path) as f:
            for line in f:
                rec = json.loads(line)
                if "start" in rec:
                    started = rec["start"]
                elif "done" in rec:
                    done = True
                    if "skipped" in rec:
                        print(f"{module_name}: skipped: {rec['skipped']}")
                else:
                    records[rec["id"]] = rec
                    started = None
        if done and proc.returncode == 0:
            return records
        if started is None:
            # The child died before or between tests (an import error, a crash in a fixture).
            print(f"{module_name}: the child exited with {proc.returncode} outside a test:\n"
                  f"{proc.stderr[-3000:]}", file=sys.stderr)
            return records
        hung.add(started)
        records[started] = {"id": started, "outcome": "failed", "ours": True,
                            "detail": f"hang (killed after {timeout} s, or the process "
                                      f"died): {proc.stderr[-2000:]}"}
    return records


def load_known(path):
    known = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)
                test_id = line[0].strip()
                if test_id:
                    known[test_id] = line[1].strip() if len(line) > 1 else ""
    return known


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--child")
    parser.add_argument("--skip")
    parser.add_argument("--out")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--known")
    parser.add_argument("--report")
    parser.add_argument("--workdir", default=".")
    # Where the modules are (the runner's own tests point it at a package of their own).
    parser.add_argument("--package", default="test.test_asyncio")
    args = parser.parse_args()
    if args.child:
        with open(args.skip) as f:
            skip = set(json.load(f))
        child(args.package, args.child, skip, args.timeout, args.out)
        return 0

    import importlib.util

    known = load_known(args.known)
    version = "%d.%d" % sys.version_info[:2]
    all_records = {}
    started = time.monotonic()
    for module_name in args.modules:
        if importlib.util.find_spec(f"{args.package}.{module_name}") is None:
            print(f"{module_name}: not in Python {version}'s test.test_asyncio, skipped")
            continue
        t0 = time.monotonic()
        out_path = os.path.join(args.workdir, f"asyncio-{version}-{module_name}.jsonl")
        records = run_module(args.package, module_name, args.timeout, out_path)
        ours = [r for r in records.values() if r["ours"] and r["outcome"] != "skipped"]
        failed = sum(r["outcome"] == "failed" for r in ours)
        made = sum(r.get("made", False) and not r["ours"] for r in records.values())
        print(f"{module_name}: {len(records)} tests, {len(ours)} ran on evloop "
              f"(and {made} more made an evloop loop without running it), "
              f"{len(ours) - failed} passed, {failed} failed ({time.monotonic() - t0:.1f} s)")
        all_records.update(records)

    ours = [r for r in all_records.values() if r["ours"] and r["outcome"] != "skipped"]
    failures = sorted(r["id"] for r in ours if r["outcome"] == "failed")
    new = [t for t in failures if t not in known]
    fixed = sorted(t for t in known if t in all_records and t not in failures
                   and all_records[t]["outcome"] == "passed")
    for test_id in new:
        detail = all_records[test_id]["detail"].strip().splitlines()
        print(f"FAILED (not a known failure): {test_id}\n    " + "\n    ".join(detail[-12:]))
    for test_id in failures:
        if test_id in known:
            print(f"known failure: {test_id}  # {known[test_id]}")
    for test_id in fixed:
        print(f"known failure now passes (remove it from the list): {test_id}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(sorted(all_records.values(), key=lambda r: r["id"]), f, indent=1)
    passed = len(ours) - len(failures)
    made = sum(r.get("made", False) and not r["ours"] for r in all_records.values())
    print(f"Python {version}: {len(all_records)} tests, {len(ours)} ran on evloop "
          f"(and {made} more made an evloop loop without running it), "
          f"{len(failures) - len(new)} of the failures known, in {time.monotonic() - started:.0f} s")
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
