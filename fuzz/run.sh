#!/usr/bin/env bash
# Builds the fuzz targets, writes the seed corpora, and runs every target for SECONDS
# seconds (default 600), JOBS at a time (default 1); then prints, per target, the runs,
# the coverage (libFuzzer's final `cov:` / `ft:`) and the findings (crash files).
#
#   fuzz/run.sh [SECONDS]                       stable toolchain, no sanitizer
#   JOBS=2 fuzz/run.sh 600                      two targets at a time
#   SANITIZER=address fuzz/run.sh 600           AddressSanitizer, on the nightly toolchain
#   TARGETS="chunked receivers" fuzz/run.sh 60  some targets only
#
# Logs go to fuzz/logs/TARGET.log, the corpora grow in fuzz/corpus/TARGET/, findings land
# in fuzz/artifacts/TARGET/. Exits 1 if any target found something.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_EACH="${1:-600}"
JOBS="${JOBS:-1}"
SANITIZER="${SANITIZER:-none}"
TARGETS="${TARGETS:-http_server http_client_response chunked receivers deferred_program}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
toolchain=()
if [ "$SANITIZER" != none ]; then
  # Sanitizers need nightly's -Zsanitizer.
  toolchain=(+nightly)
fi

cargo "${toolchain[@]}" fuzz build -s "$SANITIZER"
cargo run --quiet --release --example seeds
mkdir -p logs

run_one() {
  local t="$1"
  mkdir -p "corpus/$t" "artifacts/$t"
  cargo "${toolchain[@]}" fuzz run -s "$SANITIZER" "$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"logs/$t.log" 2>&1 || true
}

running=0
for t in $TARGETS; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

found=0
printf '%-22s %12s %8s %8s %s\n' target runs cov ft findings
for t in $TARGETS; do
  runs=$(grep -Eo 'Done [0-9]+ runs' "logs/$t.log" | grep -Eo '[0-9]+' || echo '-')
  last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -1 || true)
  cov=$(grep -Eo 'cov: [0-9]+' <<<"$last" | grep -Eo '[0-9]+' || echo '-')
  ft=$(grep -Eo 'ft: [0-9]+' <<<"$last" | grep -Eo '[0-9]+' || echo '-')
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  if grep -q 'deadly signal\|ERROR: libFuzzer\|ERROR: AddressSanitizer' "logs/$t.log"; then
    crashes=$((crashes > 0 ? crashes : 1))
  fi
  [ "$crashes" -eq 0 ] || found=1
  printf '%-22s %12s %8s %8s %s\n' "$t" "$runs" "$cov" "$ft" "$crashes"
done
exit "$found"
