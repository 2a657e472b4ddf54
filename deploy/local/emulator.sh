#!/usr/bin/env bash
# The local two-region AWS emulator: one process per region on loopback (moto server
# with the execution layer of the REST APIs provisioned into it, deploy/local/region),
# so that killing one process is a region outage, its APIs included.
#
#   deploy/local/emulator.sh start        # primary us-east-1 on :5001, secondary ap-northeast-1 on :5002, seeded
#                                         # (global tables and S3 replication; TABLES=per-region: a table per region)
#   deploy/local/emulator.sh start-empty  # the same, with nothing in them (for `failover-monitor provision apply`)
#   deploy/local/emulator.sh stop
#   deploy/local/emulator.sh kill-primary | stop-primary | cont-primary | restart-primary
#   deploy/local/emulator.sh replication-lag 2s     # or 500ms: how long a change waits before it is sent
#   deploy/local/emulator.sh partition-replication  # the regions stop replicating (both ways); changes queue
#   deploy/local/emulator.sh heal-replication       # and send what queued
#   deploy/local/emulator.sh replication-status     # per direction: pending changes, lag, partitioned
#
# restart-primary brings back an empty region: with the demo's provisioned stack it
# then runs `failover-monitor provision apply` (idempotent: it rebuilds only the
# primary's half) and `provision website-deploy`, and sets the demo user's temporary
# password again; otherwise it seeds the region again. Either way its tables become
# replicas again and the secondary's replicas fill them (the photos written before
# the outage are in the secondary's bucket, not back in the primary's).
# The two regions replicate to each other (deploy/local/REPLICATION.md): S3 Replication
# rules and DynamoDB global tables, after a lag (REPLICATION_LAG when a region starts,
# 1s by default). Killing or suspending a region stops what flows out of it, and what
# it had not sent yet is lost with it. The replication commands go to each region whose
# process runs (a killed one is skipped).
# Ports: PRIMARY_PORT (5001), SECONDARY_PORT (5002). State: target/emulator/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state="$root/target/emulator"
PRIMARY_PORT=${PRIMARY_PORT:-5001}
SECONDARY_PORT=${SECONDARY_PORT:-5002}
APP_ID=${APP_ID:-$(sed -n 's/^id *= *"\([^"]*\)".*/\1/p' "$root/monitor.toml" | head -1)}
PROJECT=${PROJECT:-photos}
mkdir -p "$state"

port_of() { [ "$1" = primary ] && echo "$PRIMARY_PORT" || echo "$SECONDARY_PORT"; }
region_of() { [ "$1" = primary ] && echo us-east-1 || echo ap-northeast-1; }
peer_of() { [ "$1" = primary ] && echo secondary || echo primary; }

start_one() {
  local role=$1 port; port=$(port_of "$role")
  if [ -f "$state/$role.pid" ] && kill -0 "$(cat "$state/$role.pid")" 2>/dev/null; then
    echo "$role emulator already running (pid $(cat "$state/$role.pid"))"; return
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken by another process; set ${role^^}_PORT" >&2; exit 1
  fi
  local peer; peer=$(peer_of "$role")
  "$region_program" -H 127.0.0.1 -p "$port" --region "$(region_of "$role")" \
    --peer "http://127.0.0.1:$(port_of "$peer")" --peer-region "$(region_of "$peer")" \
    --replication-lag "${REPLICATION_LAG:-1s}" >"$state/$role.log" 2>&1 &
  echo $! >"$state/$role.pid"
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  if [ "${EMPTY:-0}" = 1 ]; then
    :
  elif [ -f "$state/provisioned" ]; then
    reprovision
  else
    "$root/.venv/bin/python" "$root/deploy/local/seed.py" --project "$PROJECT" --app-id "$APP_ID" \
      --tables "${TABLES:-global}" "--$role" "http://127.0.0.1:$port" \
      --primary-region "$(region_of primary)" --secondary-region "$(region_of secondary)"
  fi
  echo "$role region ($(region_of "$role")) emulated at http://127.0.0.1:$port (pid $(cat "$state/$role.pid"))"
}

# The demo's stack in a region that came back empty: apply again (it rebuilds only
# what is missing), deploy the page again, and give the new Cognito user the demo's
# temporary password again.
reprovision() {
  local config; config=$(cat "$state/provisioned")
  local bin="$root/target/debug/failover-monitor"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  "$bin" --config "$config" provision apply >"$state/apply.log" && tail -1 "$state/apply.log"
  "$bin" --config "$config" provision website-deploy | tail -1
  if [ -f "$state/demo-user" ]; then
    local user password
    read -r user password <"$state/demo-user"
    "$bin" --config "$config" provision ui-config --out "$state/uiConfig.json" >/dev/null
    "$root/.venv/bin/python" "$root/deploy/local/demo_user.py" --ui-config "$state/uiConfig.json" \
      --user "$user" --password "$password" >/dev/null
    echo "the page's user $user has the temporary password $password again (reload the page)"
  fi
  # The region's REST APIs came back with new ids: the demo's monitor probes the new
  # state API once its monitor.toml is written again and the monitor reloads it.
  if [ -f "$state/monitor.pid" ] && kill -0 "$(cat "$state/monitor.pid")" 2>/dev/null; then
    "$bin" --config "$config" provision monitor-config --out "$state/monitor.toml" >/dev/null
    kill -HUP "$(cat "$state/monitor.pid")"
    echo "wrote $state/monitor.toml again (the new APIs' URLs) and reloaded the monitor (SIGHUP)"
  fi
}

stop_one() {
  local role=$1
  if [ -f "$state/$role.pid" ]; then
    kill -CONT "$(cat "$state/$role.pid")" 2>/dev/null || true
    kill "$(cat "$state/$role.pid")" 2>/dev/null || true
    rm -f "$state/$role.pid"
  fi
}

# The endpoints of the regions whose process runs.
live_urls() {
  local role
  for role in primary secondary; do
    if [ -f "$state/$role.pid" ] && kill -0 "$(cat "$state/$role.pid")" 2>/dev/null; then
      echo "http://127.0.0.1:$(port_of "$role")"
    fi
  done
}

replication() {
  local urls; urls=$(live_urls)
  if [ -z "$urls" ]; then echo "no emulated region is running" >&2; exit 1; fi
  # shellcheck disable=SC2086
  "$root/.venv/bin/python" "$root/deploy/local/emulator/control.py" $urls "$@"
}

case "${1:-}" in
  start) region_program=$("$root/deploy/local/venv.sh"); rm -f "$state/provisioned" "$state/demo-user"; start_one primary; start_one secondary ;;
  start-empty) region_program=$("$root/deploy/local/venv.sh"); rm -f "$state/provisioned" "$state/demo-user"; EMPTY=1 start_one primary; EMPTY=1 start_one secondary ;;
  stop) stop_one primary; stop_one secondary; rm -f "$state/provisioned" "$state/demo-user" ;;
  kill-primary) stop_one primary; echo "primary region emulator killed" ;;
  stop-primary) kill -STOP "$(cat "$state/primary.pid")"; echo "primary region emulator suspended (requests hang)" ;;
  cont-primary) kill -CONT "$(cat "$state/primary.pid")"; echo "primary region emulator resumed" ;;
  restart-primary) region_program=$("$root/deploy/local/venv.sh"); stop_one primary; start_one primary ;;
  replication-lag)
    [ -n "${2:-}" ] || { echo "usage: $0 replication-lag DURATION (2s, 500ms)" >&2; exit 2; }
    replication lag "$2" ;;
  partition-replication) replication partition ;;
  heal-replication) replication heal ;;
  replication-status) replication status ;;
  *) sed -n '2,28p' "$0"; exit 2 ;;
esac
