#!/usr/bin/env python3
"""Twisted's side of ropewalk's Deferred microbenchmark.

Runs the scenarios of Twisted's own Deferred benchmarks (``benchmarks/test_deferred.py``
in Twisted's repository) on the installed Twisted, the same scenarios that
``deferred/main.rs`` runs on ropewalk, and prints one JSON object per line:

    {"kind": "meta", "python": ..., "twisted": ..., ...}
    {"kind": "result", "scenario": NAME, "ns_per_op": X, ...}   (one per scenario)
    {"kind": "error", "error": TEXT}                          (and exit 2, if it cannot run)

Each scenario is warmed up (the batch doubles until the warm-up time is spent, which also
calibrates the iteration count), then timed in several runs of N iterations with
``timeit``; the median time per iteration is reported. The garbage collector stays on, as
in Twisted's own pytest-benchmark runs (``--no-gc`` switches it off, as plain ``timeit``
does).

Usage: python3 deferred_bench.py [--runs 7] [--run-ms 100] [--warmup-ms 100]
                                 [--only NAME,NAME] [--no-gc] [--list]
"""

import argparse
import gc
import json
import platform
import statistics
import sys
import time
import timeit


def emit(**record):
    print(json.dumps(record), flush=True)


try:
    import twisted
    from twisted.internet.defer import Deferred, ensureDeferred, succeed
except ImportError as exc:  # pragma: no cover - depends on the machine
    emit(
        kind="error",
        error=f"Twisted is not installed for {sys.executable} ({exc}); "
        "install it with `pip install twisted`",
    )
    sys.exit(2)


def add(x, a):
    """The callback of the callback-chain scenarios: ``f(x, a)`` in Twisted's benchmark."""
    return x + a


def create_fire_bare():
    d = Deferred()
    d.callback(1)
    return d


def fires_at_end():
    d = Deferred()
    d.addCallback(add, 1)
    d.addCallback(add, 2)
    d.addCallback(add, 3)
    d.addCallback(add, 4)
    d.callback(2)
    return d


def fires_at_start():
    d = Deferred()
    d.callback(2)
    d.addCallback(add, 1)
    d.addCallback(add, 2)
    d.addCallback(add, 3)
    d.addCallback(add, 4)
    return d


def _fail_first(_):
    raise Exception("boom!")


def _trap_and_fail_again(failure):
    failure.trap(Exception)
    raise Exception("lesser boom!")


def _swallow(_):
    return None


def errback_chain():
    d = succeed("result")
    d.addCallback(_fail_first)
    d.addErrback(_trap_and_fail_again)
    d.addBoth(_swallow)
    return d


def chained_already_fired():
    d, d2, d3 = Deferred(), Deferred(), Deferred()
    d2.callback(123)
    d3.callback(456)
    d.addCallback(lambda _: d2)
    d.addCallback(lambda _: d3)
    d.callback(123)
    return d


def chained_not_fired():
    d, d2, d3, d4 = Deferred(), Deferred(), Deferred(), Deferred()
    d3.addCallback(lambda _: d4)
    d3.callback(123)
    d.addCallback(lambda _: d2)
    d.addCallback(lambda _: d3)
    d2.callback(123)
    d4.callback(57)
    d.callback(7)
    return d


async def _await_many():
    total = 0
    for x in range(1000):
        total += await succeed(x)
    return total


def await_succeed_x1000():
    return ensureDeferred(_await_many())


def _result(d):
    box = []
    d.addBoth(box.append)
    return box[0] if box else "<no result>"


# name -> (operation, the result its Deferred must end with)
SCENARIOS = {
    "create_fire_bare": (create_fire_bare, 1),
    "fires_at_end": (fires_at_end, 12),
    "fires_at_start": (fires_at_start, 12),
    "errback_chain": (errback_chain, None),
    "chained_already_fired": (chained_already_fired, 456),
    "chained_not_fired": (chained_not_fired, 57),
    "await_succeed_x1000": (await_succeed_x1000, 499500),
}


def measure(op, warmup_s, run_s, runs, keep_gc):
    timer = timeit.Timer(op, setup="gc.enable()" if keep_gc else "pass", globals={"gc": gc})
    number = 1
    start = time.perf_counter()
    while True:
        took = timer.timeit(number)
        if time.perf_counter() - start >= warmup_s:
            break
        number *= 2
    per_op = max(took / number, 1e-9)
    number = max(1, int(run_s / per_op))
    samples = sorted(t / number * 1e9 for t in timer.repeat(repeat=runs, number=number))
    return statistics.median(samples), samples[0], samples[-1], number


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--run-ms", type=float, default=100.0)
    parser.add_argument("--warmup-ms", type=float, default=100.0)
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--no-gc", action="store_true", help="switch the GC off while timing")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()

    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            print(f"deferred_bench.py: no scenario {n!r}, skipped", file=sys.stderr)

    emit(
        kind="meta",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        twisted=twisted.__version__,
        gc="off" if args.no_gc else "on",
    )
    for name in names:
        if name not in SCENARIOS:
            continue
        op, want = SCENARIOS[name]
        got = _result(op())
        if got != want:
            emit(kind="error", error=f"scenario {name}: expected {want!r}, got {got!r}")
            return 2
        median, fastest, slowest, number = measure(
            op, args.warmup_ms / 1e3, args.run_ms / 1e3, max(1, args.runs), not args.no_gc
        )
        emit(
            kind="result",
            scenario=name,
            ns_per_op=round(median, 1),
            min_ns_per_op=round(fastest, 1),
            max_ns_per_op=round(slowest, 1),
            iterations=number,
            runs=max(1, args.runs),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
