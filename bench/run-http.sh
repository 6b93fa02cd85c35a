#!/bin/sh
# The HTTP benchmark: installs wrk if it is missing, builds the bench binaries, then runs
# the driver (ropewalk and hyper, optionally Twisted, under the same wrk load; see
# README.md).
#   ./run-http.sh                         # ropewalk and hyper, 3 scenarios, ~1 min
#   ./run-http.sh --repeat 3 --twisted    # the README's table
#   ./run-http.sh --help
set -eu
cd "$(dirname "$0")"
if ! command -v wrk >/dev/null 2>&1; then
    apt-get install -y wrk || sudo apt-get install -y wrk
fi
cargo build --release --bins
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec target/release/http "$@"
