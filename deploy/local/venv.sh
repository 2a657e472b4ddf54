#!/usr/bin/env bash
# Makes sure <repo>/.venv holds the pinned AWS emulator (moto server) and prints the
# path of its moto_server. Needs only Python 3; idempotent and quick when done.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$root/.venv"
moto_version=5.2.5
if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null \
   || [ ! -x "$venv/bin/moto_server" ]; then
  echo "creating $venv with moto[server]==$moto_version ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi
echo "$venv/bin/moto_server"
