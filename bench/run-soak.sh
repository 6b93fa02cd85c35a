#!/bin/sh
# The soak test: builds the example servers (at the repository root) and the soak driver,
# then runs it (see README.md, "The soak test"). Exit code 0 when every check passes.
#   ./run-soak.sh                          # http_server, 60 s
#   ./run-soak.sh --server echo --duration 30
#   ./run-soak.sh --help
set -eu
cd "$(dirname "$0")"
(cd .. && cargo build --release --example http_server --example echo_server)
cargo build --release --bin soak
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec target/release/soak "$@"
