#!/usr/bin/env bash
# Schemathesis against the admin API's OpenAPI document, on a running daemon backed by
# the two-region emulator: no 5xx, every response as the document says.
#   fuzz/schemathesis.sh          # 25 examples per operation (CI)
#   EXAMPLES=500 fuzz/schemathesis.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
./deploy/local/venv.sh >/dev/null
[ -x .venv/bin/schemathesis ] || .venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
# Build the binary as the tests build it (dev-dependency features unified), so that
# after `cargo test` this is a no-op instead of a second build of every SDK crate.
cargo build --quiet --all-targets
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
pp=$(port); sp=$(port); ap=$(port)
# The two regions as the local stack runs them: a replicating pair, so that the
# default global tables exist in both (deploy/local/REPLICATION.md).
region=$(./deploy/local/venv.sh)
"$region" -H 127.0.0.1 -p "$pp" --region us-east-1 --peer "http://127.0.0.1:$sp" \
  --peer-region ap-northeast-1 >"$work/p.log" 2>&1 & pids+=($!)
"$region" -H 127.0.0.1 -p "$sp" --region ap-northeast-1 --peer "http://127.0.0.1:$pp" \
  --peer-region us-east-1 >"$work/s.log" 2>&1 & pids+=($!)
wait_port "$pp"; wait_port "$sp"
.venv/bin/python deploy/local/seed.py --app-id fuzz-app --primary "http://127.0.0.1:$pp" --secondary "http://127.0.0.1:$sp"
sed -e "s#http://127.0.0.1:5001#http://127.0.0.1:$pp#g" -e "s#http://127.0.0.1:5002#http://127.0.0.1:$sp#g" \
    -e 's#^id = .*#id = "fuzz-app"#' monitor.toml > "$work/monitor.toml"
token=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test FAILOVER_MONITOR_ADMIN_TOKEN=$token \
FAILOVER_MONITOR__ADMIN__LISTEN=127.0.0.1:$ap FAILOVER_MONITOR__MONITOR__HOLD_DOWN=0s RUST_LOG=warn \
  target/debug/failover-monitor --config "$work/monitor.toml" run >"$work/monitor.log" 2>&1 & pids+=($!)
wait_port "$ap"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ap/readyz" >/dev/null && break; sleep 0.2; done
set +e
.venv/bin/schemathesis run docs/openapi.json --url "http://127.0.0.1:$ap" \
  -H "Authorization: Bearer $token" -n "${EXAMPLES:-25}" --seed "${SEED:-1}" \
  --checks all --request-timeout 35 --max-time "${MAX_TIME:-300}" --warnings off "$@"
rc=$?
set -e
if grep -q '"level":"ERROR"\|panicked' "$work/monitor.log"; then echo "the daemon logged errors:"; grep -E 'ERROR|panicked' "$work/monitor.log" | head; fi
exit $rc
