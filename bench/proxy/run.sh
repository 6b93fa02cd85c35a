#!/usr/bin/env bash
# Bulk TCP relaying (issue #19): ropewalk's `tcp_proxy` (splice(2) between the two
# sockets) against socat and HAProxy (`mode tcp`, `option splice-request` and
# `splice-response`, one thread), with a direct connection as the ceiling (what the
# loopback carries: the cost every proxy adds to). The load is iperf3 (one stream, client
# to server, then server to client with -R), through each target in turn, round after
# round, so that the machine's load falls on all of them alike.
#
# Reported per run: throughput (GB/s, iperf3's receiver) and the proxy's CPU per GiB moved
# (utime+stime of the proxy and its reaped children, from /proc/PID/stat, over the run).
#
# usage: bench/proxy/run.sh [NAME=BIN ...]
#   each NAME=BIN a tcp_proxy binary to compare (default: this tree's release build,
#   built if missing); socat and HAProxy are added when installed (the script installs
#   them and iperf3 with apt-get when missing and it can).
# env: SECS (4), ROUNDS (3), STREAMS (1)
#
# The numbers are only comparable within one run: ratios, not absolute figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECS:-4}
ROUNDS=${ROUNDS:-3}
STREAMS=${STREAMS:-1}
for tool in iperf3 socat haproxy; do
    if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
        apt-get install -y -qq --no-install-recommends "$tool" >/dev/null 2>&1 ||
            sudo apt-get install -y -qq --no-install-recommends "$tool" >/dev/null 2>&1 || true
    fi
done
command -v iperf3 >/dev/null || { echo "iperf3 is needed" >&2; exit 1; }
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

proxies=("$@")
if [ ${#proxies[@]} -eq 0 ]; then
    cargo build --release --example tcp_proxy >&2
    proxies=("ropewalk=target/release/examples/tcp_proxy")
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

# utime+stime+cutime+cstime, in clock ticks, of a process and its live children.
ticks() {
    local total=0 pid
    for pid in "$@" $(ps -o pid= --ppid "$1" 2>/dev/null); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat")))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

backend=$(free_port)
# The iperf3 server, up for the whole run: it serves one test at a time.
iperf3 -s -p "$backend" >"$work/server.log" 2>&1 &
pids+=($!)
wait_port "$backend"

names=(direct)
ports=("$backend")
procs=("")

for spec in "${proxies[@]}"; do
    name=${spec%%=*}
    bin=${spec#*=}
    "$bin" --port 0 --to "127.0.0.1:$backend" >"$work/$name.out" 2>"$work/$name.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        grep -q "listening on" "$work/$name.out" 2>/dev/null && break
        sleep 0.1
    done
    addr=$(awk '/listening on/ {print $3}' "$work/$name.out")
    [ -n "$addr" ] || { echo "$name did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
    names+=("$name")
    ports+=("${addr##*:}")
    procs+=("$pid")
done

if command -v socat >/dev/null; then
    port=$(free_port)
    socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$backend" 2>/dev/null &
    pid=$!
    pids+=("$pid")
    wait_port "$port"
    names+=(socat)
    ports+=("$port")
    procs+=("$pid")
fi

if [ -x "$HAPROXY" ]; then
    port=$(free_port)
    cat >"$work/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    # splice-auto splices only when it guesses a transfer is large, and on this
    # loopback it guessed never (strace: recvfrom/sendto only): splice both ways.
    option splice-request
    option splice-response
frontend bench
    bind 127.0.0.1:$port
    default_backend target
backend target
    server s1 127.0.0.1:$backend
CONF
    "$HAPROXY" -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_port "$port"
    names+=(haproxy)
    ports+=("$port")
    procs+=("$pid")
fi

# One iperf3 run through PORT (with -R when $2 says so), the proxy's PID in $3:
# "GB/s cpu_s_per_GiB".
measure() {
    local port=$1 dir=$2 pid=$3 t0=0 t1=0 out
    [ -n "$pid" ] && t0=$(ticks "$pid")
    out=$(iperf3 -c 127.0.0.1 -p "$port" -t "$SECS" -P "$STREAMS" $dir -J)
    [ -n "$pid" ] && t1=$(ticks "$pid")
    python3 -c '
import json, sys
r = json.loads(sys.argv[1])["end"]["sum_received"]
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
gib = r["bytes"] / 2**30
cpu = "-" if sys.argv[4] == "" else "%.2f" % (ticks / hz / gib)
print("%.2f %s" % (r["bits_per_second"] / 8e9, cpu))
' "$out" $((t1 - t0)) "$HZ" "$pid"
}

echo "load before: $(uptime)"
echo
echo "| round | proxy | direction | GB/s | proxy CPU s/GiB |"
echo "|--:|---|---|--:|--:|"
for round in $(seq "$ROUNDS"); do
    for dir in up down; do
        flag=""; [ "$dir" = down ] && flag="-R"
        for i in "${!names[@]}"; do
            read -r gbs cpu < <(measure "${ports[$i]}" "$flag" "${procs[$i]}")
            echo "| $round | ${names[$i]} | $dir | $gbs | $cpu |"
        done
    done
done
echo
echo "load after: $(uptime)"
