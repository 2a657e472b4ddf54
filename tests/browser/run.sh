#!/usr/bin/env bash
# The page's tests: its SigV4 signer against AWS's example and botocore (Node), then
# the page in headless Chromium (Debian's chromium-headless-shell; Playwright drives
# it, no browser download) against the two-region emulator with the stack provisioned
# by `failover-monitor provision apply`.
# Debian's nodejs and chromium-headless-shell are installed with apt-get when missing.
# Screenshots of each step: target/browser/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
./deploy/local/venv.sh >/dev/null
py=.venv/bin/python
if ! $py -c "
import importlib.metadata as m, sys
pins = [l.split('#')[0].strip() for l in open('tests/browser/requirements.txt')]
sys.exit(any(m.version(n) != v for n, v in (p.split('==') for p in pins if p)))
" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/browser/requirements.txt
fi
# Debian's packages for what is missing: the browser, and Node for the signer's test.
chromium=$(command -v chromium-headless-shell || command -v chromium || true)
missing=()
[ -n "$chromium" ] || missing+=(chromium-headless-shell)
command -v node >/dev/null || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  chromium=${chromium:-$(command -v chromium-headless-shell)}
fi
(cd tests/browser && "$root/$py" -m unittest test_sigv4)
cargo build --quiet
exec $py tests/browser/e2e.py --chromium "$chromium"
