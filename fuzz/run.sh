#!/usr/bin/env bash
# Fuzzes config parsing and admin request bodies with cargo-fuzz (libFuzzer).
#   fuzz/run.sh            # 20 s per target (what CI runs: tests/run.sh, FUZZ_SECONDS)
#   fuzz/run.sh 600        # longer
# Seeds: the shipped monitor.toml, the invalid configs of the tests, a few bodies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz@0.13.2
# The instrumented build of the whole crate is slow; keep it across checkouts.
target="${XDG_CACHE_HOME:-$HOME/.cache}/failover-monitor/fuzz-target"
mkdir -p "$target"
mkdir -p corpus/config_parse corpus/admin_body
cp ../monitor.toml corpus/config_parse/shipped.toml
cp ../tests/testdata/config/*.toml corpus/config_parse/
printf '{"reason": "drill", "force": false, "caller": "alice"}' > corpus/admin_body/ok.json
printf '{"reason": ""}' > corpus/admin_body/empty-reason.json
printf '{"reason": "x", "force": "yes"}' > corpus/admin_body/bad-force.json
# The machine has one stable toolchain: RUSTC_BOOTSTRAP lets cargo-fuzz pass its
# instrumentation flags; no sanitizer, so no nightly-only runtime is needed.
export RUSTC_BOOTSTRAP=1
for t in config_parse admin_body; do
  cargo fuzz run --sanitizer none --target-dir "$target" "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tee "/tmp/fuzz-$t.log" | grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)|ERROR|panicked' || true
  grep -qE 'Done [0-9]+ runs' "/tmp/fuzz-$t.log" || { echo "fuzz target $t failed"; tail -30 "/tmp/fuzz-$t.log"; exit 1; }
done
