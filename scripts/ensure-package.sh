#!/usr/bin/env bash
# ensure-package.sh VARIABLE DEFAULT_BINARY PACKAGE PURPOSE: a program the platform needs from a Debian package.
# Present (at $VARIABLE, else DEFAULT_BINARY): nothing to do. As root with apt-get: install PACKAGE without starting or
# enabling any service it brings (the platform starts its own). Otherwise: say how, and fail.
set -euo pipefail
variable=$1 default=$2 package=$3 purpose=$4
binary=${!variable:-$default}
[ -x "$binary" ] && exit 0
if [ -n "${!variable:-}" ]; then
  echo "$variable=$binary is not an executable file" >&2; exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's $package package: $purpose"
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d  # exit 101: no service is started while installing
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; trap 'rm -f "$policy"' EXIT; }
  apt-get update -qq
  apt-get install -y -qq "$package" >/dev/null
  [ -x "$binary" ] || { echo "apt-get installed $package but $binary is missing" >&2; exit 1; }
  # Nor at the next boot (e.g. Debian's redis-server would listen on its port without the platform's password).
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl disable --now -q "$package" 2>/dev/null || true
  elif command -v update-rc.d >/dev/null; then update-rc.d "$package" disable >/dev/null 2>&1 || true; fi
else
  echo "$purpose: the platform needs $binary. Install Debian's $package package (as root: apt-get install $package)," \
       "or set $variable to another binary." >&2
  exit 1
fi
