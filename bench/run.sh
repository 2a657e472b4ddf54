#!/usr/bin/env bash
# Benchmarks: installs what they need, builds the release binary, runs bench/bench.py
# (detection on the emulator; HTTP probe cost side by side with Debian's
# prometheus-blackbox-exporter; scale; /metrics; a perf profile) and rewrites
# docs/PERFORMANCE.md.
#   bench/run.sh                     # everything (about 15 minutes)
#   BEFORE=old/failover-monitor bench/run.sh   # an older build side by side
#   bench/run.sh --phases cost       # one phase; see bench/bench.py --help
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./deploy/local/venv.sh >/dev/null
need=()
for t in nginx:nginx-light hey:hey wrk:wrk prometheus-blackbox-exporter:prometheus-blackbox-exporter perf:linux-perf; do
  command -v "${t%%:*}" >/dev/null || need+=("${t##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --quiet
exec ./.venv/bin/python bench/bench.py "$@"
