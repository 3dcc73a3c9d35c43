#!/usr/bin/env bash
# Proves the harness fails when a scenario fails, and shows the guest output:
# boots the board with only hil-tests/selftest's deliberately failing scenario.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$("$here/run.sh" --scenarios "$here/selftest" --timeout 240 --out "$here/../target/hil-selftest" 2>&1)
rc=$?
check() {
  if ! grep -qF -- "$1" <<<"$out"; then
    echo "hil selftest: FAILED: expected '$1' in the harness output:"
    echo "$out"
    exit 1
  fi
}
if [ "$rc" -eq 0 ]; then
  echo "hil selftest: FAILED: a failing scenario did not fail the run:"
  echo "$out"
  exit 1
fi
check 'scenario failed: {"scenario":"10-deliberate-failure","result":"fail"'
check "hil: ---------------- guest console ----------------"
check "[10-deliberate-failure] this line must appear in the harness output"
check "[10-deliberate-failure] FAIL: deliberate failure"
echo "hil selftest: a failing scenario fails the run (exit $rc) and the guest console is shown"
