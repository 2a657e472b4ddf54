#!/usr/bin/env bash
# The demo: starts the two-region emulator (empty), builds failover-monitor, provisions
# the whole stack into it with `failover-monitor provision apply` (tables, buckets,
# APIs, alarms, Cognito, CloudFront, IAM roles, in both regions), deploys the web page
# to the website bucket and serves it on loopback (`provision website-deploy`,
# `provision website-local`, standing in for CloudFront), gives the Cognito user a
# temporary password, writes a monitor.toml whose probes target what was provisioned,
# creates an admin token (target/emulator/admin-token) and runs the monitor with both.
# It prints the page's URL, the user name and the temporary password: sign in, upload,
# comment; in another terminal, `deploy/local/emulator.sh kill-primary` is a primary
# region outage: watch the log fail over and the page follow, the photo and its
# comments still there. The two regions replicate to each other (global tables, S3
# replication; deploy/local/REPLICATION.md) and the stack is provisioned with global
# tables, so the monitor runs as on AWS: it writes the secondary's replica only.
# Once every probe is up it runs a practice failover (`drill run --hold 20s`) and
# writes its failover's recovery report to target/emulator/drill-report.html.
# Ctrl-C stops everything.
# Port of the page: WEBSITE_PORT (8080).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
state="$root/target/emulator"
website_port=${WEBSITE_PORT:-8080}
"$root/deploy/local/emulator.sh" start-empty
site_pid=""
monitor_pid=""
cleanup() {
  [ -n "$site_pid" ] && kill "$site_pid" 2>/dev/null || true
  [ -n "$monitor_pid" ] && kill "$monitor_pid" 2>/dev/null || true
  rm -f "$state/monitor.pid"
  "$root/deploy/local/emulator.sh" stop
}
trap cleanup EXIT
if [ -x "$root/target/debug/failover-monitor" ]; then
  echo "building failover-monitor (only what changed: seconds)"
else
  echo "building failover-monitor for the first time: cargo compiles the AWS SDK crates,"
  echo "about 4 to 6 minutes on 2 cores (later starts take seconds); progress follows"
fi
cargo build
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test   # the emulator accepts any
bin="$root/target/debug/failover-monitor"
config="$root/monitor.toml"
"$bin" --config "$config" provision apply
echo "$config" >"$state/provisioned"
"$bin" --config "$config" provision monitor-config --out "$state/monitor.toml"
"$bin" --config "$config" provision website-deploy | tail -1
"$bin" --config "$config" provision ui-config --out "$state/uiConfig.json" >/dev/null
user=$(sed -n 's/^cognito_username *= *"\([^"]*\)".*/\1/p' "$config" | head -1)
# The emulator mails no temporary password: the demo sets one (still temporary: the
# page asks for a new one at the first sign-in). emulator.sh restart-primary sets it again.
password=$("$root/.venv/bin/python" "$root/deploy/local/demo_user.py" \
  --ui-config "$state/uiConfig.json" --user "$user")
echo "$user $password" >"$state/demo-user"
# The admin API refuses every change without a token: the demo makes one (24
# characters, readable by this user only) and starts the monitor with it.
token_file="$state/admin-token"
if [ ! -s "$token_file" ]; then
  (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(18), end="")' >"$token_file")
fi
chmod 600 "$token_file"
"$bin" --config "$config" provision website-local --port "$website_port" >"$state/website-local.log" 2>&1 &
site_pid=$!
for _ in $(seq 50); do
  grep -q '^serving' "$state/website-local.log" 2>/dev/null && break
  kill -0 "$site_pid" 2>/dev/null || { cat "$state/website-local.log" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^serving .* at \(http:[^ ]*\) .*/\1/p' "$state/website-local.log")
cat <<MSG

The web page: $url
  user name:           $user
  temporary password:  $password   (the page asks for a new one at the first sign-in)

failover-monitor is starting with $state/monitor.toml (probes on the provisioned stack)
and the admin token in $token_file. Try, in another terminal, from $root:
  export FAILOVER_MONITOR_ADMIN_TOKEN=\$(cat target/emulator/admin-token)   # the CLI sends it to the monitor
  target/debug/failover-monitor admin status  # what the monitor sees: probes, verdict, state
  target/debug/failover-monitor drill status  # the practice failover the demo runs first, step by step
  deploy/local/emulator.sh replication-status # replication between the regions: pending changes, lag
  deploy/local/emulator.sh kill-primary      # region outage -> failover within ~3 s; the page moves to the secondary,
                                             # the photos and comments replicated there with it
  target/debug/failover-monitor state get     # both regions' copies of the config item
  target/debug/failover-monitor state history # the audit records
  target/debug/failover-monitor report       # the failover's recovery report: timeline, RTO, RPO
  target/debug/failover-monitor report --html >target/emulator/report.html   # the same as a page
  target/debug/failover-monitor photo upload  # a tinted test photo, to the region the state points at
  target/debug/failover-monitor comments add --message "hello"   # on a random photo, signed, through the store API
  deploy/local/emulator.sh restart-primary   # the primary returns empty; provision apply rebuilds it
  target/debug/failover-monitor state set active --reason "primary verified"   # failback, checked by the monitor
  target/debug/failover-monitor provision destroy --yes   # back to nothing

MSG
FAILOVER_MONITOR__ADMIN__TOKEN_FILE="$token_file" "$bin" --config "$state/monitor.toml" run "$@" &
monitor_pid=$!
echo "$monitor_pid" >"$state/monitor.pid"   # emulator.sh restart-primary reloads it
# A practice failover once every probe is up (DEMO_DRILL=0 skips it): the drill
# fails over, verifies the secondary as a client, holds 20 s, fails back, verifies
# the primary; then its failover's recovery report is written as a page.
if [ "${DEMO_DRILL:-1}" != 0 ]; then
  (
    export FAILOVER_MONITOR_ADMIN_TOKEN="$(cat "$token_file")"
    fm() { "$bin" --config "$state/monitor.toml" "$@"; }
    for _ in $(seq 240); do
      fm admin --json status 2>/dev/null | python3 -c 'import json, sys
s = json.load(sys.stdin)
sys.exit(0 if s["probes"] and all(p["health"] == "up" for p in s["probes"]) else 1)' && break
      sleep 0.5
    done
    echo "--- a practice failover: failover-monitor drill run --hold 20s"
    fm drill run --reason "demo: practice failover" --hold 20s || true
    v=$(fm drill status --json 2>/dev/null | python3 -c 'import json, sys
d = json.load(sys.stdin)["drill"] or {}
print((d.get("versions") or [""])[0])')
    if [ -n "$v" ]; then
      sleep 3   # the failover's report is complete once the failback cut its watch short
      fm report "$v" --html >"$state/drill-report.html" 2>/dev/null || true
      echo "--- the drill's failover report: $state/drill-report.html (failover-monitor report $v)"
    fi
  ) &
fi
# Ctrl-C: the monitor stops cleanly (it finishes a write in flight), then the cleanup.
trap 'kill -INT "$monitor_pid" 2>/dev/null || true' INT TERM
wait "$monitor_pid" || true
wait "$monitor_pid" 2>/dev/null || true
rm -f "$state/monitor.pid"
