#!/usr/bin/env bash
# The demo: starts the two-region emulator, builds failover-monitor and runs it with
# the repo's monitor.toml. In another terminal, `deploy/local/emulator.sh kill-primary`
# is a primary region outage: watch the log fail over. Ctrl-C stops everything.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
"$root/deploy/local/emulator.sh" start
trap '"$root/deploy/local/emulator.sh" stop' EXIT
cargo build --quiet
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test   # the emulator accepts any
cat <<MSG

failover-monitor is starting with $root/monitor.toml. Try, in another terminal:
  deploy/local/emulator.sh kill-primary      # region outage -> failover within ~3 s
  target/debug/failover-monitor state get     # both regions' copies of the config item
  target/debug/failover-monitor state history # the audit records
  deploy/local/emulator.sh restart-primary   # the primary returns; its copy is caught up
  target/debug/failover-monitor state set active --reason "primary verified"

MSG
"$root/target/debug/failover-monitor" --config "$root/monitor.toml" run "$@"
