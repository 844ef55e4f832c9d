#!/usr/bin/env bash
# Run every test with node's test runner.
#   CAIRN_TEST=unit     only tests that need no root (unit tests next to the code)
#   CAIRN_TEST=<regex>  only test files whose path matches
# The whole run happens in a private mount namespace: whatever a failing test leaves mounted
# vanishes with the run, and the loop devices (autoclear) with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test >&2
filter="${CAIRN_TEST:-}"
mapfile -t files < <(find packages/*/dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
if [[ "$filter" == "unit" ]]; then
  mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -v '/dist/test/')
elif [[ -n "$filter" ]]; then
  mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -E "$filter")
fi
if (( ${#files[@]} == 0 )); then echo "no test files match '$filter'" >&2; exit 1; fi
exec unshare --mount --propagation private -- node --test --test-concurrency=2 --test-timeout=300000 "${files[@]}"
