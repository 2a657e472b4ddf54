#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need, then runs lint and
# every test. Needs only the Rust toolchain and Python 3 on the machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./deploy/local/venv.sh >/dev/null          # moto server, the two-region AWS emulator
# promtool and a Prometheus server for the metrics tests (Debian's package).
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features failover-monitor/e2e,failover-monitor/randomized --quiet -- -D warnings
# Every suite but the randomized ones (tests/README.md: the suites and their layers).
cargo test --workspace --all-targets --features failover-monitor/e2e
# The emulator's API Gateway execution layer and its replication (Python unittest,
# real region processes).
./tests/emulator_layer/run.sh
# The web page in Debian's headless Chromium against the provisioned emulator.
./tests/browser/run.sh
# Randomized suites print a summary line; a few trials run here
# (TRIALS=100, CHAOS_TRIALS=60, SIM_SEEDS=100000 with --release for the full sets).
# The simulation: real daemons in one process on paused time, faults at random, every
# property checked (docs/SIMULATION.md); a failing seed replays with SIM_SEED=<s> SIM_SEEDS=1.
SIM_SEEDS=${SIM_SEEDS:-300} cargo test --test sim_seeds -- --nocapture simulation
TRIALS=${TRIALS:-3} CHAOS_TRIALS=${CHAOS_TRIALS:-6} \
  cargo test --features failover-monitor/randomized --test random_trials --test random_chaos -- --nocapture
# Fuzzing, short: cargo-fuzz on config parsing and admin bodies, schemathesis on the
# admin API (fuzz/run.sh 600 and EXAMPLES=500 fuzz/schemathesis.sh for long runs).
# (fuzz/ builds the binary's package with --no-default-features: no provisioning.)
./fuzz/run.sh "${FUZZ_SECONDS:-20}"
MAX_TIME=${SCHEMATHESIS_SECONDS:-60} ./fuzz/schemathesis.sh
