#!/usr/bin/env python3
"""Twisted's side of ropewalk's LineReceiver benchmark.

Runs the scenarios of Twisted's own line-parsing benchmarks
(``benchmarks/test_linereceiver.py`` in Twisted's repository) on the installed Twisted,
the same scenarios that ``lines/main.rs`` runs on ropewalk: one op delivers
``((b"abcde" * 10) + b"\\r\\n") * 1000`` (1000 lines, 52,000 bytes) to a connected
``LineReceiver`` or ``LineOnlyReceiver`` whose ``lineReceived`` does nothing, in
``dataReceived`` calls of CHUNK bytes (``line_receiver_CHUNK``, ``line_only_CHUNK``).
The protocol is made once per scenario, as in Twisted's benchmark; slicing the chunks
off the payload is part of the op there, and here too.

It prints one JSON object per line, as ``deferred_bench.py`` does:

    {"kind": "meta", "python": ..., "twisted": ..., ...}
    {"kind": "result", "scenario": NAME, "ns_per_op": X, ...}   (one per scenario)
    {"kind": "error", "error": TEXT}                          (and exit 2, if it cannot run)

Warm-up, calibration and timing are ``deferred_bench.measure``'s: the batch doubles
until the warm-up time is spent, then several ``timeit`` runs of N ops; the median is
reported. The garbage collector stays on (``--no-gc`` switches it off).

Usage: python3 line_bench.py [--runs 7] [--run-ms 100] [--warmup-ms 100]
                             [--only NAME,NAME] [--no-gc] [--list]
"""

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Exits with a JSON error line if Twisted is missing.
from deferred_bench import emit, measure  # noqa: E402

import twisted  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.protocols.basic import LineOnlyReceiver, LineReceiver  # noqa: E402

LINE = b"abcde" * 10
LINES = 1000
DATA = (LINE + b"\r\n") * LINES

# Chunk sizes of Twisted's benchmark, then 1 byte (not in Twisted's file).
CHUNKS = (16, 64, 256, 1024, 1)


class QuietLineReceiver(LineReceiver):
    def lineReceived(self, line):
        pass


class QuietLineOnlyReceiver(LineOnlyReceiver):
    def lineReceived(self, line):
        pass


class CountingLineReceiver(LineReceiver):
    lines = wrong = 0

    def lineReceived(self, line):
        self.lines += 1
        self.wrong += line != LINE


class CountingLineOnlyReceiver(LineOnlyReceiver):
    lines = wrong = 0

    def lineReceived(self, line):
        self.lines += 1
        self.wrong += line != LINE


def deliver(protocol, data, chunk):
    """Twisted's ``deliverData``: ``data`` in ``dataReceived`` calls of ``chunk`` bytes."""
    i = 0
    while i < len(data):
        protocol.dataReceived(data[i : i + chunk])
        i += chunk


def connected(cls):
    protocol = cls()
    protocol.makeConnection(StringTransport())
    return protocol


# name -> (quiet class, counting class, chunk size)
SCENARIOS = {}
for _prefix, _quiet, _counting in (
    ("line_receiver", QuietLineReceiver, CountingLineReceiver),
    ("line_only", QuietLineOnlyReceiver, CountingLineOnlyReceiver),
):
    for _chunk in CHUNKS:
        SCENARIOS[f"{_prefix}_{_chunk}"] = (_quiet, _counting, _chunk)


def check(counting, chunk, ops=3):
    """Three ops with a counting protocol: every line right, nothing left, nothing written."""
    protocol = connected(counting)
    for _ in range(ops):
        deliver(protocol, DATA, chunk)
    problems = []
    if protocol.lines != ops * LINES or protocol.wrong:
        problems.append(f"{protocol.lines} lines ({protocol.wrong} wrong), expected {ops * LINES}")
    if protocol._buffer:
        problems.append(f"{len(protocol._buffer)} bytes left over")
    if protocol.transport.value() or protocol.transport.disconnecting:
        problems.append("wrote or disconnected")
    return "; ".join(problems)


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
            print(f"line_bench.py: no scenario {n!r}, skipped", file=sys.stderr)

    emit(
        kind="meta",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        twisted=twisted.__version__,
        gc="off" if args.no_gc else "on",
    )
    for name in names:
        if name not in SCENARIOS:
            continue
        quiet, counting, chunk = SCENARIOS[name]
        problem = check(counting, chunk)
        if problem:
            emit(kind="error", error=f"scenario {name}: {problem}")
            return 2
        protocol = connected(quiet)

        def op(protocol=protocol, chunk=chunk):
            deliver(protocol, DATA, chunk)

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
