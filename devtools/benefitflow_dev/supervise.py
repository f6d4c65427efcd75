"""`python -m benefitflow_dev.supervise <command…>`: run a service's command, and again when it exits on its own.

What systemd's `Restart=on-failure` or compose's `restart: unless-stopped` do for a deployment, for the one-machine
installation's Airflow services: Airflow's scheduler, for one, exits when PostgreSQL restarts (its loop does not
retry a lost connection), and the runs waiting for it would wait for ever. A service that exits five times within
five minutes is left stopped (its log says why). `make down` stops both: it signals the process group they share.
Run as a script (`python …/supervise.py`): it needs nothing but the standard library, and the service's own
`PYTHONPATH` stays as it is.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import deque
from types import FrameType

RESTART_DELAY_SECONDS = 5
GIVE_UP_AFTER = 5  # exits within
GIVE_UP_WINDOW_SECONDS = 300  # a service exiting as it starts takes 10–20 s a round (with the delay)


def supervise(command: list[str]) -> int:
    stopping = False

    def stop(_signal_number: int, _frame: FrameType | None) -> None:  # the service got the signal too (its group)
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exits: deque[float] = deque(maxlen=GIVE_UP_AFTER)
    while True:
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            return code
        exits.append(time.monotonic())
        if len(exits) == GIVE_UP_AFTER and exits[-1] - exits[0] < GIVE_UP_WINDOW_SECONDS:
            print(f"supervise: {command[0]} exited {GIVE_UP_AFTER} times within {GIVE_UP_WINDOW_SECONDS} s "
                  f"(last exit status {code}); leaving it stopped", flush=True)
            return code
        print(f"supervise: {command[0]} exited with status {code}; starting it again in {RESTART_DELAY_SECONDS} s",
              flush=True)
        time.sleep(RESTART_DELAY_SECONDS)
        if stopping:
            return code


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1:]))
