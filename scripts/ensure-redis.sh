#!/usr/bin/env bash
# ensure-redis.sh: the Celery broker for `make up EXECUTOR=celery` (Debian's redis-server package).
# Present: nothing to do. As root with apt-get: install it (its own service is left stopped: the platform starts
# its own on 127.0.0.1 with a password). Otherwise: say how, and fail.
# BENEFITFLOW_REDIS_SERVER names another redis-server binary (the stack reads the same variable).
set -euo pipefail
redis=${BENEFITFLOW_REDIS_SERVER:-/usr/bin/redis-server}
[ -x "$redis" ] && exit 0
if [ -n "${BENEFITFLOW_REDIS_SERVER:-}" ]; then
  echo "BENEFITFLOW_REDIS_SERVER=$redis is not an executable file" >&2; exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's redis-server package, the Celery workers' broker"
  export DEBIAN_FRONTEND=noninteractive
  # Installed only: no system service started beside the platform's own (policy-rc.d 101 forbids starting).
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; trap 'rm -f "$policy"' EXIT; }
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
  [ -x "$redis" ] || { echo "apt-get installed redis-server but $redis is missing" >&2; exit 1; }
else
  echo "EXECUTOR=celery needs Redis at $redis. Install Debian's redis-server package" \
       "(as root: apt-get install redis-server), or set BENEFITFLOW_REDIS_SERVER to a redis-server binary." >&2
  exit 1
fi
