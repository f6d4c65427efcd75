#!/usr/bin/env bash
# ensure-redis.sh: the Celery broker for `make up EXECUTOR=celery` and the celery test tier (Debian's redis-server).
# The platform starts its own Redis on 127.0.0.1 with a password. BENEFITFLOW_REDIS_SERVER names another binary (the
# stack reads the same variable).
exec "$(dirname "$0")/ensure-package.sh" BENEFITFLOW_REDIS_SERVER /usr/bin/redis-server redis-server \
  "the Celery workers' broker (Redis)"
