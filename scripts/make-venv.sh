#!/usr/bin/env bash
# make-venv.sh DIR LOCKFILE: create a virtual environment at DIR with exactly the locked packages.
# Works on a fresh Debian/Ubuntu with only python3 (3.11+): installs python3-venv when venv is missing.
set -euo pipefail
dir=$1 lock=$2
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "benefitflow needs Python 3.11 or newer as $python" >&2; exit 1; }
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    echo "python3 -m venv is not available: install the python3-venv package" >&2; exit 1
  fi
fi
rm -rf "$dir.tmp"
"$python" -m venv "$dir.tmp"
quiet_pip() {  # this machine's pip config names index folders that may not exist: drop that noise
  "$dir.tmp/bin/pip" install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
  return "${PIPESTATUS[0]}"
}
quiet_pip --upgrade pip wheel
quiet_pip -r "$lock"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
# venvs are not relocatable: fix the scripts' interpreter lines after the move.
grep -rl "$dir.tmp" "$dir/bin" | xargs -r sed -i "s#$dir.tmp#$dir#g"
cp "$lock" "$dir/.lock"
