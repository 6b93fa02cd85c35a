#!/bin/sh
# What the two-stage server costs per request, against the one-stage server in the same
# run: `examples/http_server` serving `/` (a trivial handler: "Hello, World!"), on one
# reactor, with and without `--two-stage`, to N sequential keep-alive requests from curl.
#
# - instructions per request: the server under `valgrind --tool=callgrind` (every thread:
#   the reactor and the worker pool), N requests minus a run with none, divided by N;
# - natively, `perf stat` on the server: CPU time (task-clock: user and kernel, every
#   thread) and context switches per request, the same way (three rounds, interleaved;
#   the load average beside each). Virtual machines often have no instruction counter:
#   callgrind stands in for it.
#
#   ./run-two-stage-cost.sh              # N = 2000 under callgrind, 20000 natively
#   ./run-two-stage-cost.sh 500 5000
set -eu
cd "$(dirname "$0")/.."
NCG=${1:-2000}
NPERF=${2:-20000}
cargo build --release --example http_server
BIN=target/release/examples/http_server
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Starts "$@" (which prints `listening on ADDR`), sends $REQS requests to `/`, stops it
# with SIGTERM and waits for it.
serve_and_load() {
    reqs=$1
    shift
    : >"$TMP/stdout"
    "$@" >"$TMP/stdout" 2>"$TMP/stderr" &
    pid=$!
    i=0
    while ! grep -q '^listening on ' "$TMP/stdout"; do
        i=$((i + 1))
        if [ $i -gt 600 ]; then
            echo "server did not start" >&2
            cat "$TMP/stderr" >&2
            kill -KILL $pid
            exit 1
        fi
        sleep 0.1
    done
    addr=$(sed -n 's/^listening on //p' "$TMP/stdout")
    if [ "$reqs" -gt 0 ]; then
        curl -s -o /dev/null --max-time 600 "http://$addr/?[1-$reqs]"
    fi
    # Under perf the server is perf's child; under valgrind it is the process itself.
    server=$(pgrep -P $pid || echo $pid)
    kill -TERM $server
    wait $pid || true
}

# Callgrind's total instruction count for the server (all threads) with $2 requests.
callgrind_ir() {
    mode=$1
    reqs=$2
    rm -f "$TMP"/cg.out*
    # shellcheck disable=SC2086
    serve_and_load "$reqs" valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
        "$BIN" --port 0 --pool-threads 2 $mode
    sed -n 's/^totals: //p; s/^summary: //p' "$TMP"/cg.out* | head -1
}

# perf stat: "task-clock-ms context-switches" for the server with $2 requests.
perf_counts() {
    mode=$1
    reqs=$2
    # shellcheck disable=SC2086
    serve_and_load "$reqs" perf stat -x, -o "$TMP/perf" \
        -e task-clock,context-switches "$BIN" --port 0 --pool-threads 2 $mode
    awk -F, '/task-clock/ {t=$1} /context-switches/ {c=$1} END {print t, c}' "$TMP/perf"
}

echo "load before: $(uptime)"
for mode in "" "--two-stage"; do
    name=${mode:-one-stage}
    name=${name#--}
    base=$(callgrind_ir "$mode" 0)
    full=$(callgrind_ir "$mode" "$NCG")
    echo "callgrind $name: $(((full - base) / NCG)) instructions/request ($NCG requests; $base at rest)"
done
for round in 1 2 3; do
    for mode in "" "--two-stage"; do
        name=${mode:-one-stage}
        name=${name#--}
        # shellcheck disable=SC2046
        set -- $(perf_counts "$mode" 0)
        bt=$1 bc=$2
        # shellcheck disable=SC2046
        set -- $(perf_counts "$mode" "$NPERF")
        echo "perf round $round $name:" \
            "$(echo "($1 - $bt) * 1000 / $NPERF" | bc -l | cut -c1-6) us CPU/request," \
            "$(echo "($2 - $bc) / $NPERF" | bc -l | cut -c1-5) context switches/request" \
            "(load: $(cut -d' ' -f1-3 /proc/loadavg))"
    done
done
