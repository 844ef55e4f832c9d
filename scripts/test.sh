#!/usr/bin/env bash
# Run every test with node's test runner, in two layers:
#   the unit layer  tests next to the code (packages/*/src): no root, no kernel parts; as root this
#                   script runs it as `nobody` to keep it so. Seconds.
#   the root layer  packages/*/test: real cairnd, loop devices, mounts, crun. Minutes.
#   then the Python SDK's pytest suite (scripts/test-python.sh) against a real cairnd.
#   CAIRN_TEST=unit     only the unit layer
#   CAIRN_TEST=python   only the Python SDK's suite
#   CAIRN_TEST=<regex>  only test files whose path matches (no Python)
#   CAIRN_TEST_CONCURRENCY=<n>  root suites at once (default 3)
# The root layer runs in a private mount namespace: whatever a failing test leaves mounted
# vanishes with the run, and the loop devices (autoclear) with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test >&2
filter="${CAIRN_TEST:-}"
if [[ "$filter" == "python" ]]; then exec bash scripts/test-python.sh; fi
mapfile -t files < <(find packages/*/dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
if [[ -n "$filter" && "$filter" != "unit" ]]; then
  mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -E "$filter" || true)
fi
unit=() root=()
for f in "${files[@]}"; do
  [[ -z "$f" ]] && continue
  if [[ "$f" == */dist/test/* ]]; then [[ "$filter" == "unit" ]] || root+=("$f"); else unit+=("$f"); fi
done
if (( ${#unit[@]} + ${#root[@]} == 0 )); then echo "no test files match '$filter'" >&2; exit 1; fi

status=0
if (( ${#unit[@]} > 0 )); then
  as=()
  # Unprivileged when we can be: proves the unit layer needs no root (nobody must be able to read the tree).
  if (( EUID == 0 )) && runuser -u nobody -- test -r "${unit[0]}" 2>/dev/null; then as=(runuser -u nobody --); fi
  echo "unit layer: ${#unit[@]} files${as:+ as nobody}" >&2
  "${as[@]}" node --test --test-concurrency=2 --test-timeout=120000 "${unit[@]}" || status=$?
fi
if (( ${#root[@]} > 0 )); then
  echo "root layer: ${#root[@]} files" >&2
  unshare --mount --propagation private -- node --test --test-concurrency="${CAIRN_TEST_CONCURRENCY:-3}" --test-timeout=300000 "${root[@]}" || status=$?
fi
if [[ -z "$filter" ]]; then
  echo "python layer: packages/python/tests" >&2
  bash scripts/test-python.sh || status=$?
fi
exit $status
