#!/usr/bin/env bash
# Static files (issue #19): ropewalk's `http_server --root` against nginx (one worker,
# `sendfile on`, `open_file_cache`, no access log), under `wrk -t1 -cC -dDs` keep-alive
# load on files of 1 KiB, 64 KiB and 1 MiB. Reports req/s and server CPU per request
# (utime+stime deltas of the server's processes, from /proc/PID/stat).
#
# usage: bench/static/run.sh [NAME=BIN ...]
#   each NAME=BIN an http_server binary to compare (default: this tree's release build,
#   built if missing); nginx is added when installed (the script installs it and wrk
#   with apt-get when missing and it can).
# env: CONNS (64), SECS (4), ROUNDS (1)
#
# The numbers are only comparable within one run: run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${CONNS:-64}
SECS=${SECS:-4}
ROUNDS=${ROUNDS:-1}
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

# One wrk run against URL with the server's PID: "req/s cpu_us_per_req".
measure() {
    local url=$1 pid=$2 t0 t1 out rps note
    t0=$(ticks "$pid")
    out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "$url")
    t1=$(ticks "$pid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    # Errors or non-2xx answers make a run worthless: say so in the table.
    note=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr -s ' ' | tr '\n' ' ' || true)
    awk -v r="$rps" -v d=$((t1 - t0)) -v hz="$HZ" -v s="$SECS" -v n="${note:--}" \
        'BEGIN { printf "%.0f %.1f %s\n", r, (d / hz) * 1e6 / (r * s), n }'
}

echo "| server | file | req/s | server CPU µs/req | errors |"
echo "|---|---|--:|--:|---|"
run_server() { # name pid base
    local name=$1 pid=$2 base=$3 size round
    for size in "${sizes[@]}"; do
        for round in $(seq "$ROUNDS"); do
            read -r rps us note < <(measure "$base/static/$size.bin" "$pid")
            echo "| $name | $size | $rps | $us | $note |"
        done
    done
}

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
    run_server "$name" "$pid" "http://$addr"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
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
        curl -sf "http://127.0.0.1:$port/static/1k.bin" -o /dev/null 2>/dev/null && break
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    run_server "nginx" "$npid" "http://127.0.0.1:$port"
    kill "$npid"
    wait "$npid" 2>/dev/null || true
fi
