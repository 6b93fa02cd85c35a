#!/usr/bin/env bash
# The architecture experiment in one command: builds the bench, runs the driver (every
# multi-core design under the same open-loop load, the model checked against the
# measurements, then the simulation to 64 cores) and writes
# results/YYYY-MM-DD-HHMM-architecture.md and .svg (see architecture/README.md).
#   ./run-architecture.sh                # the full run, about 10 minutes
#   ./run-architecture.sh --quick        # a smoke run, under a minute once built
#   ./run-architecture.sh --sim-only     # the simulation alone
#   ./run-architecture.sh -- --designs one,shared,pool --conns 64   # driver flags after --
# Options before `--` are this script's: --quick, --sim-only, --name NAME (the results
# file's suffix, default architecture), --no-write (print only).
set -euo pipefail
cd "$(dirname "$0")"

args=("$@")
driver=()
name=architecture
write=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) driver+=(--quick); name=architecture-quick ;;
        --sim-only) driver+=(--sim-only); name=architecture-sim ;;
        --name) name="${2:?--name needs a value}"; shift ;;
        --no-write) write=0 ;;
        --) shift; driver+=("$@"); break ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "run-architecture.sh: unknown option $1 (driver flags go after --)" >&2; exit 2 ;;
    esac
    shift
done

# One timed run at a time on this machine: the lock the other run-*.sh take.
if [ -z "${ROPEWALK_BENCH_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    export ROPEWALK_BENCH_LOCKED=1
    exec flock /tmp/bench.lock "$(pwd)/$(basename "$0")" "${args[@]}"
fi

cargo build --release --bin architecture --bin architecture_server --bin architecture_load
# Thread per connection and 1,000 connections need descriptors.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

stamp="$(date -u +%Y-%m-%d-%H%M)"
out="results/$stamp-$name"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
before="$(uptime)"
tables="$(mktemp)"
trap 'rm -f "$tables"' EXIT
target/release/architecture --svg "$out.svg" "${driver[@]}" | tee "$tables"
after="$(uptime)"
if [ "$write" = 1 ]; then
    {
        echo "# Architecture experiment, $(date -u '+%Y-%m-%d %H:%M') UTC"
        echo
        echo "\`./run-architecture.sh ${args[*]}\` at commit \`$commit\`."
        echo
        echo "- Machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)"
        echo "- Load before: \`${before#*load average: }\` (1, 5, 15 min); after: \`${after#*load average: }\`"
        echo "- The machine is shared with other builds and runs: re-run on a quiet machine before"
        echo "  trusting a difference of less than about 2× between two designs."
        echo
        echo "![p99 per design: measured and modelled; simulated policies](./$(basename "$out").svg)"
        echo
        cat "$tables"
    } > "$out.md"
    echo "run-architecture.sh: wrote $out.md and $out.svg" >&2
else
    rm -f "$out.svg"
fi
