#!/usr/bin/env bash
# Run the Python SDK's tests (packages/python/tests) against a real cairnd the suite starts itself.
# Installs nothing: scripts/setup.sh installs python3-httpx and python3-pytest for Debian's
# /usr/bin/python3 (PyPI is not needed). Like scripts/test.sh, the run happens in a private mount
# namespace, so whatever a failing test leaves mounted vanishes with it.
set -euo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3
if ! "$py" -c 'import httpx, pytest' 2>/dev/null; then
  echo "test-python: $py cannot import httpx and pytest; install them with" >&2
  echo "  apt-get install -y python3-httpx python3-pytest" >&2
  exit 1
fi
if [[ ! -f packages/server/dist/src/main.js ]]; then
  echo "test-python: cairnd is not built; run scripts/setup.sh first" >&2
  exit 1
fi
exec unshare --mount --propagation private -- "$py" -m pytest -q -p no:cacheprovider packages/python/tests "$@"
