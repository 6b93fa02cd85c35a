#!/usr/bin/env bash
# Every benchmark in one run: builds the bench, installs the peers that are missing, runs
# each driver, and writes one dated page, results/YYYY-MM-DD-HHMM-all.md, with the
# machine, the exact commands, the tables and an SVG chart per benchmark (see README.md).
#   ./run-all.sh                       # full settings, soak included: about 30 minutes
#   ./run-all.sh --quick               # short runs, fewer rounds, no soak: a few minutes
#   ./run-all.sh --quick --only deferred,http --no-latest
#   ./run-all.sh --help
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'EOF'
usage: run-all.sh [--quick] [--only LIST] [--no-latest] [--no-install]

  --quick        fewer rounds and shorter runs (the drivers' own flags), no soak: a few
                 minutes; its ratios are rougher than a full run's
  --only LIST    comma-separated, from: deferred,lines,reactor,echo,http,https,multicore,
                 soak
                 (default: all; soak only in full mode unless named here)
  --no-latest    do not copy the charts to results/latest/ (which the READMEs embed)
  --no-install   do not install missing peers (wrk, perf, Twisted); skip what needs them
  -h, --help     this text

Writes results/YYYY-MM-DD-HHMM-all.md and results/YYYY-MM-DD-HHMM-all/ (each driver's
output, its stderr, its chart). Runs under flock /tmp/bench.lock, so that two timed
runs on one machine never overlap. Environment: PYTHON, the interpreter of the Twisted
peers and of chart.py (default python3).
EOF
}

args=("$@")
quick=0
only=""
latest=1
install=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --only) only="${2:?--only needs a list}"; shift ;;
        --no-latest) latest=0 ;;
        --no-install) install=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run-all.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# One timed run at a time on this machine: the same lock the other run-*.sh use.
if [ -z "${ROPEWALK_BENCH_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    export ROPEWALK_BENCH_LOCKED=1
    exec flock /tmp/bench.lock "$(pwd)/$(basename "$0")" "${args[@]}"
fi

PYTHON="${PYTHON:-python3}"
all="deferred lines reactor echo http https multicore soak"
selected() {
    if [ -n "$only" ]; then
        case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac
    fi
    [ "$1" != soak ] || [ "$quick" = 0 ]
}
if [ -n "$only" ]; then
    for name in ${only//,/ }; do
        case " $all " in *" $name "*) ;; *) echo "run-all.sh: no benchmark $name" >&2; exit 2 ;; esac
    done
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
apt_install() {
    [ "$install" = 1 ] || return 1
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq >/dev/null 2>&1 \
            && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; }
}

# The peers: each installed only when missing, as .ci/run and run-http.sh do.
if ! "$PYTHON" -c 'import twisted.web.server' >/dev/null 2>&1 && [ "$install" = 1 ]; then
    echo "run-all.sh: installing Twisted for $PYTHON" >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check twisted >/dev/null 2>&1 \
        || "$PYTHON" -m pip install --quiet --disable-pip-version-check \
            --break-system-packages twisted >/dev/null 2>&1 \
        || apt_install python3-twisted || true
fi
twisted=0
if "$PYTHON" -c 'import twisted.web.server' >/dev/null 2>&1; then twisted=1; fi
if selected http && ! command -v wrk >/dev/null 2>&1; then
    echo "run-all.sh: installing wrk" >&2
    apt_install wrk || true
fi
if { selected echo || selected http; } && ! command -v perf >/dev/null 2>&1; then
    echo "run-all.sh: installing perf (the syscall columns)" >&2
    apt_install linux-perf || true
fi

echo "run-all.sh: building the bench (release)" >&2
cargo build --release --bins
if selected soak; then
    (cd .. && cargo build --release --example http_server --example echo_server)
fi
# 10,000 idle connections need 10,000 descriptors in the server and in the client.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

stamp="$(date -u +%Y-%m-%d-%H%M)"
when="$(date -u '+%Y-%m-%d %H:%M UTC')"
mode="$([ "$quick" = 1 ] && echo quick || echo full)"
name="$stamp-all"
dir="results/$name"
page="results/$name.md"
mkdir -p "$dir"

# The exact command of each benchmark in each mode; the full ones are those of the
# README's latest tables.
command_of() {
    local q="$quick"
    case "$1" in
        deferred | lines)
            if [ "$q" = 1 ]; then
                echo "target/release/$1 --rounds 1 --runs 3 --run-ms 50 --warmup-ms 50"
            elif [ "$1" = deferred ]; then
                echo "target/release/deferred --rounds 5 --runs 11 --run-ms 200"
            else
                echo "target/release/lines --rounds 3 --runs 9"
            fi ;;
        reactor)
            if [ "$q" = 1 ]; then
                echo "target/release/reactor --runs 1 --timers 100000 --round-trips 2000 --jobs 20000"
            else
                echo "target/release/reactor"
            fi ;;
        echo)
            local servers=""
            [ "$twisted" = 1 ] || servers=" --servers ropewalk,tokio"
            if [ "$q" = 1 ]; then
                echo "target/release/echo$servers --duration-ms 1000 --warmup-ms 200 --syscall-ms 500 --idle 1000"
            else
                echo "target/release/echo$servers --repeat 5 --duration-ms 2000"
            fi ;;
        http)
            local tw=""
            [ "$twisted" = 0 ] || tw=" --twisted"
            if [ "$q" = 1 ]; then
                echo "target/release/http$tw --duration 1 --warmup 1 --syscall 1 --idle 1000"
            else
                echo "target/release/http$tw --repeat 3 --duration 4"
            fi ;;
        https)
            if [ "$q" = 1 ]; then
                echo "target/release/https --duration 2 --warmup 1 --idle 500"
            else
                echo "target/release/https --repeat 3 --duration 4"
            fi ;;
        multicore)
            if [ "$q" = 1 ]; then
                echo "target/release/multicore --duration-ms 500 --warmup-ms 100 --herd 200"
            else
                echo "target/release/multicore"
            fi ;;
        soak)
            echo "target/release/soak" ;;
    esac
}

# Why a benchmark cannot run here, if it cannot.
missing_peer() {
    case "$1" in
        deferred | lines)
            [ "$twisted" = 1 ] || echo "its peer, Twisted, is not installed for $PYTHON (pip install twisted)" ;;
        http)
            command -v wrk >/dev/null 2>&1 || echo "wrk is not installed (apt-get install -y wrk)" ;;
    esac
}

title_of() {
    case "$1" in
        deferred) echo "Deferred (ropewalk vs Twisted)" ;;
        lines) echo "LineReceiver (ropewalk vs Twisted)" ;;
        reactor) echo "reactor (ropewalk vs tokio)" ;;
        echo) echo "echo (ropewalk vs tokio and Twisted)" ;;
        http) echo "HTTP (ropewalk vs hyper, the kernel floor, and Twisted)" ;;
        https) echo "HTTPS (ropewalk vs hyper over tokio-rustls)" ;;
        multicore) echo "multicore (ropewalk's designs vs tokio multi-thread)" ;;
        soak) echo "soak (an example server under a hostile mix of clients)" ;;
    esac
}

{
    echo "# Every benchmark, $when ($mode run)"
    echo
    echo "Written by \`bench/run-all.sh$([ "$quick" = 1 ] && echo " --quick")\`: each benchmark's command"
    echo "(run in \`bench/\`), its chart and the tables its driver printed. Its stderr is in"
    echo "[\`$name/\`]($name/). How each benchmark is measured: [bench/README.md](../README.md)."
    echo
    echo "| machine | |"
    echo "| --- | --- |"
    echo "| CPUs | $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')) |"
    echo "| kernel | $(uname -sr) |"
    echo "| memory | $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
    echo "| load average at the start | $(cut -d' ' -f1-3 /proc/loadavg) |"
    echo "| rustc | $(rustc --version) |"
    echo "| commit | $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- .. 2>/dev/null || echo ' (with uncommitted changes)') |"
    echo "| Twisted | $([ "$twisted" = 1 ] && "$PYTHON" -c 'import sys, twisted; print("twisted", twisted.__version__, "on python", sys.version.split()[0])' || echo "not installed") |"
    echo "| wrk | $(command -v wrk >/dev/null 2>&1 && ({ wrk -v 2>&1 || true; } | head -n1 | cut -d' ' -f1-2) || echo "not installed") |"
    echo "| perf | $(command -v perf >/dev/null 2>&1 && (perf --version 2>/dev/null || echo present) || echo "not installed: no syscall columns") |"
    echo
} >"$page"

failed=""
for bench in $all; do
    selected "$bench" || continue
    {
        echo "## $(title_of "$bench")"
        echo
    } >>"$page"
    why="$(missing_peer "$bench")"
    if [ -n "$why" ]; then
        echo "run-all.sh: skipping $bench: $why" >&2
        echo "Skipped: $why." >>"$page"
        echo >>"$page"
        continue
    fi
    cmd="$(command_of "$bench")"
    echo "run-all.sh: $cmd" >&2
    start=$(date +%s)
    status=0
    # Word splitting of $cmd is wanted: it is a command line of plain words.
    # shellcheck disable=SC2086
    $cmd >"$dir/$bench.md" 2>"$dir/$bench.log" || status=$?
    took=$(($(date +%s) - start))
    {
        echo "\`$cmd\` ($took s, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end$([ "$status" = 0 ] || echo ", exit status $status"))"
        echo
    } >>"$page"
    if [ "$status" != 0 ]; then failed="$failed $bench"; fi
    if [ "$bench" != soak ]; then
        if "$PYTHON" chart.py "$bench" "$dir/$bench.md" -o "$dir/$bench.svg" \
            --date "$mode run of $when" --source "results/$name.md" 2>>"$dir/$bench.log"; then
            echo "![$(title_of "$bench")]($name/$bench.svg)" >>"$page"
            echo >>"$page"
        else
            echo "(No chart: the output has no table of ratios; see \`$name/$bench.log\`.)" >>"$page"
            echo >>"$page"
        fi
        cat "$dir/$bench.md" >>"$page"
    else
        # The soak's report is plain text, not tables.
        { echo '```'; cat "$dir/$bench.md"; echo '```'; } >>"$page"
    fi
    echo >>"$page"
done

echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)." >>"$page"
# The index lists the runs newest first: this one goes above the first entry.
awk -v entry="- [$name.md]($name.md): Every benchmark, $when ($mode run)" \
    '!done && /^- \[/ { print entry; done = 1 } { print }' results/README.md >"$dir/index.tmp"
mv "$dir/index.tmp" results/README.md
if [ "$latest" = 1 ] && compgen -G "$dir/*.svg" >/dev/null; then
    mkdir -p results/latest
    cp "$dir"/*.svg results/latest/
fi
echo "run-all.sh: wrote $page" >&2
if [ -n "$failed" ]; then
    echo "run-all.sh: failed:$failed (see $dir/*.log)" >&2
    exit 1
fi
