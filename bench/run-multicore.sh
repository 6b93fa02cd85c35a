#!/bin/sh
# The multicore benchmark: builds the bench binaries, then runs the driver (one reactor,
# N reactors with an accept queue each, one shared, or a queue each fed by a dispatcher,
# reactor + worker pool, thread per connection, and tokio's multi-thread runtime under
# the same echo load; see README.md).
#   ./run-multicore.sh                          # everything, about a minute
#   ./run-multicore.sh --scenarios 64 --work-us 0 --herd 0
#   ./run-multicore.sh --help
# On a shared machine, keep timed runs apart: flock /tmp/bench.lock ./run-multicore.sh
set -eu
cd "$(dirname "$0")"
cargo build --release --bins
# Thread per connection and the accept burst need descriptors.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec target/release/multicore "$@"
