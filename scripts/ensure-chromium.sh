#!/usr/bin/env bash
# ensure-chromium.sh: the headless browser the end-to-end tests drive (Debian's chromium package).
# Present: nothing to do. As root with apt-get: install it. Otherwise: say how, and fail.
# BENEFITFLOW_CHROMIUM names another Chromium binary (the tests read the same variable).
set -euo pipefail
chromium=${BENEFITFLOW_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] && exit 0
if [ -n "${BENEFITFLOW_CHROMIUM:-}" ]; then
  echo "BENEFITFLOW_CHROMIUM=$chromium is not an executable file" >&2; exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium package for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
  [ -x "$chromium" ] || { echo "apt-get installed chromium but $chromium is missing" >&2; exit 1; }
else
  echo "The browser tests need Chromium at $chromium. Install Debian's chromium package" \
       "(as root: apt-get install chromium), or set BENEFITFLOW_CHROMIUM to a Chromium binary." >&2
  exit 1
fi
