#!/usr/bin/env bash
# Static files (issue #19): ropewalk's `http_server --root` against nginx (one worker,
# `sendfile on`, `open_file_cache`, no access log), under `wrk -t1 -cC -dDs` keep-alive
# load on files of 1 KiB, 64 KiB and 1 MiB. Reports req/s and server CPU per request
# (utime+stime deltas of the server's processes, from /proc/PID/stat). All servers run at
# once and take turns, round after round (every connection count, size and server in
# each round), so the machine's load falls on all of them alike.
#
# Then, for each ropewalk server: 200 `/thread?ms=200` jobs are queued on its worker pool
# and a 10 KiB file is fetched on a new connection; its time is reported (the file must
# not wait behind the jobs).
#
# usage: bench/static/run.sh [NAME=BIN ...]
#   each NAME=BIN an http_server binary to compare (default: this tree's release build,
#   built if missing); nginx is added when installed (the script installs it and wrk
#   with apt-get when missing and it can).
# env: CONNS ("64 256": the connection counts), SECS (4), ROUNDS (2)
#
# The numbers are only comparable within one run: run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${CONNS:-64 256}
SECS=${SECS:-4}
ROUNDS=${ROUNDS:-2}
for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
        pkg=$tool; [ "$tool" = nginx ] && pkg=nginx-light
        apt-get install -y "$pkg" >/dev/null 2>&1 || sudo apt-get install -y "$pkg" >/dev/null 2>&1 || true
    fi
done
command -v wrk >/dev/null || { echo "wrk is needed" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

servers=("$@")
if [ ${#servers[@]} -eq 0 ]; then
    cargo build --release --example http_server >&2
    servers=("ropewalk=target/release/examples/http_server")
fi

work=$(mktemp -d)
trap 'for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/root"
head -c 1024 /dev/urandom >"$work/root/1k.bin"
head -c 65536 /dev/urandom >"$work/root/64k.bin"
head -c 1048576 /dev/urandom >"$work/root/1m.bin"
head -c 10240 /dev/urandom >"$work/root/10k.bin"
# nginx workers run as another user when started as root: let them read the files.
chmod 755 "$work" "$work/root"
chmod 644 "$work"/root/*
sizes=(1k 64k 1m)

# utime+stime, in clock ticks, of a process and its children.
ticks() {
    local total=0 pid
    for pid in "$@" $(ps -o pid= --ppid "$1" 2>/dev/null); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

# One wrk run against URL with the server's PID and CONNS connections:
# "req/s cpu_us_per_req".
measure() {
    local url=$1 pid=$2 conns=$3 t0 t1 out rps note
    t0=$(ticks "$pid")
    out=$(wrk -t1 -c"$conns" -d"${SECS}s" "$url")
    t1=$(ticks "$pid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    # Errors or non-2xx answers make a run worthless: say so in the table.
    note=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr -s ' ' | tr '\n' ' ' || true)
    awk -v r="$rps" -v d=$((t1 - t0)) -v hz="$HZ" -v s="$SECS" -v n="${note:--}" \
        'BEGIN { printf "%.0f %.1f %s\n", r, (d / hz) * 1e6 / (r * s), n }'
}

names=()
pids=()
bases=()
for spec in "${servers[@]}"; do
    name=${spec%%=*}
    bin=${spec#*=}
    "$bin" --port 0 --root "$work/root" >"$work/$name.out" 2>"$work/$name.err" &
    pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$work/$name.out" 2>/dev/null && break
        sleep 0.1
    done
    addr=$(awk '/listening on/ {print $3}' "$work/$name.out")
    [ -n "$addr" ] || { echo "$name did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
    names+=("$name")
    pids+=("$pid")
    bases+=("http://$addr")
done

if [ -x "$NGINX" ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1024 inactive=60s;
    open_file_cache_valid 1s;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp;
    scgi_temp_path $work/tmp;
    server {
        listen 127.0.0.1:$port;
        location /static/ { alias $work/root/; }
    }
}
CONF
    mkdir -p "$work/tmp"
    "$NGINX" -c "$work/nginx.conf" -p "$work" &
    npid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    names+=(nginx)
    pids+=("$npid")
    bases+=("http://127.0.0.1:$port")
fi

echo "load before: $(uptime)"
echo
echo "| round | conns | file | server | req/s | server CPU µs/req | errors |"
echo "|--:|--:|---|---|--:|--:|---|"
for round in $(seq "$ROUNDS"); do
    for conns in $CONNS; do
        for size in "${sizes[@]}"; do
            for i in "${!names[@]}"; do
                read -r rps us note < <(measure "${bases[$i]}/static/$size.bin" "${pids[$i]}" "$conns")
                echo "| $round | $conns | $size | ${names[$i]} | $rps | $us | $note |"
            done
        done
    done
done
echo
echo "load after: $(uptime)"

# A 10 KiB file while 200 jobs of 200 ms wait for the worker pool: the jobs' requests
# are sent first (each on its own connection, not read), then the file is fetched on a
# new connection and timed from connect to the last byte, five times (the median, min
# and max are reported).
saturated() { # base
    python3 - "$1" <<'PY'
import socket, sys, time
host, port = sys.argv[1].split("//")[1].split(":")
port = int(port)
jobs = []
for _ in range(200):
    s = socket.create_connection((host, port))
    s.sendall(b"GET /thread?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n")
    jobs.append(s)
# The jobs' requests reach the server before the file's.
time.sleep(0.2)
times = []
for _ in range(5):
    t0 = time.perf_counter()
    s = socket.create_connection((host, port))
    s.sendall(b"GET /static/10k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    times.append((time.perf_counter() - t0) * 1e3)
    if not (got.startswith(b"HTTP/1.1 200") and len(got) > 10240):
        print("bad answer")
        sys.exit(1)
times.sort()
print("%.2f ms (min %.2f, max %.2f of 5)" % (times[2], times[0], times[4]))
for j in jobs:
    j.close()
PY
}
echo
echo "| server | 10 KiB file under 200 queued /thread?ms=200 jobs (median) |"
echo "|---|--:|"
for i in "${!names[@]}"; do
    [ "${names[$i]}" = nginx ] && continue
    echo "| ${names[$i]} | $(saturated "${bases[$i]}") |"
done

for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
