#!/usr/bin/env bash
# The emulator layer (deploy/local/emulator), with Python's unittest: the API Gateway
# template shim alone, then REST APIs created with boto3 in real region processes
# (deploy/local/region) and called over loopback HTTP, then replication between two
# region processes peered with each other (S3 Replication rules, global tables).
#   tests/emulator_layer/run.sh            # everything (~30 s)
#   tests/emulator_layer/run.sh test_vtl   # one module (test_replication: two peered regions)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$root/deploy/local/venv.sh" >/dev/null
cd "$root/tests/emulator_layer"
exec "$root/.venv/bin/python" - "$@" <<'PY'
import sys
import unittest

loader = unittest.defaultTestLoader
if sys.argv[1:]:
    sys.path.insert(0, ".")
    suite = loader.loadTestsFromNames(sys.argv[1:])
else:
    suite = loader.discover(".", top_level_dir=".")
result = unittest.TextTestRunner(verbosity=2).run(suite)
failed = len(result.failures) + len(result.errors)
print(f"emulator-layer: {result.testsRun - failed - len(result.skipped)} passed, {failed} failed")
sys.exit(0 if result.wasSuccessful() else 1)
PY
