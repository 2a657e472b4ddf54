#!/usr/bin/env bash
# Makes sure <repo>/.venv holds the pinned AWS emulator (moto server) and the Velocity
# engine of its API Gateway execution layer, and prints the path of the program that
# starts one emulated region (deploy/local/region: moto server with the execution
# layer, same arguments as moto_server). Needs only Python 3; idempotent and quick
# when done.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$root/.venv"
moto_version=5.2.5
# airspeed renders API Gateway mapping templates; cachetools is its one dependency.
extra=(airspeed==0.7.1 cachetools==8.0.2)
if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null \
   || [ ! -x "$venv/bin/moto_server" ]; then
  echo "creating $venv with moto[server]==$moto_version ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi
if ! "$venv/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(any(m.version(n) != v for n, v in (p.split('==') for p in sys.argv[1:])))
" "${extra[@]}" 2>/dev/null; then
  echo "installing ${extra[*]} into $venv ..." >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${extra[@]}"
fi
echo "$root/deploy/local/region"
