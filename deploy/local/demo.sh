#!/usr/bin/env bash
# The demo: starts the two-region emulator (empty), builds failover-monitor, provisions
# the whole stack into it with `failover-monitor provision apply` (tables, buckets,
# APIs, alarms, Cognito, CloudFront, IAM roles, in both regions), writes a monitor.toml
# whose probes target what was provisioned, and runs the monitor with it.
# In another terminal, `deploy/local/emulator.sh kill-primary` is a primary region
# outage: watch the log fail over. Ctrl-C stops everything.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
state="$root/target/emulator"
"$root/deploy/local/emulator.sh" start-empty
trap '"$root/deploy/local/emulator.sh" stop' EXIT
cargo build --quiet
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test   # the emulator accepts any
bin="$root/target/debug/failover-monitor"
"$bin" --config "$root/monitor.toml" provision apply
echo "$root/monitor.toml" >"$state/provisioned"
"$bin" --config "$root/monitor.toml" provision monitor-config --out "$state/monitor.toml"
cat <<MSG

failover-monitor is starting with $state/monitor.toml (probes on the provisioned stack).
Try, in another terminal:
  deploy/local/emulator.sh kill-primary      # region outage -> failover within ~3 s
  target/debug/failover-monitor state get     # both regions' copies of the config item
  target/debug/failover-monitor state history # the audit records
  target/debug/failover-monitor photo upload  # a tinted test photo, to the region the state points at
  target/debug/failover-monitor comments add --message "hello"   # on a random photo
  deploy/local/emulator.sh restart-primary   # the primary returns empty; provision apply rebuilds it
  target/debug/failover-monitor state set active --reason "primary verified"
  target/debug/failover-monitor provision destroy --yes   # back to nothing

MSG
"$bin" --config "$state/monitor.toml" run "$@"
