#!/bin/sh
# The echo benchmark: builds the bench binaries, then runs the driver
# (ropewalk, tokio and Twisted echo servers under the same load; see README.md).
#   ./run-echo.sh                 # everything, about a minute and a half
#   ./run-echo.sh --no-twisted --scenarios 64 --idle 0
#   ./run-echo.sh --help
set -eu
cd "$(dirname "$0")"
cargo build --release --bins
# 10,000 idle connections need 10,000 descriptors in the server and in the client.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec target/release/echo "$@"
