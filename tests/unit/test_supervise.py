"""A service that exits on its own is started again; one stopped as `make down` stops it stays stopped
(benefitflow_dev/supervise.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from benefitflow_dev import services


def test_a_service_that_exits_is_started_again_and_a_stopped_one_is_not(tmp_path) -> None:
    starts = tmp_path / "starts"
    # Exits at once the first time (as the scheduler when PostgreSQL restarts), then keeps running.
    command = f"echo started >> {starts}; [ $(wc -l < {starts}) -ge 2 ] && exec sleep 60; exit 3"
    supervisor = subprocess.Popen([sys.executable, str(services.SUPERVISE), "sh", "-c", command],
                                  start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not starts.exists() or len(starts.read_text().splitlines()) < 2):
            time.sleep(0.2)
        assert starts.read_text().splitlines() == ["started", "started"]
        os.killpg(supervisor.pid, signal.SIGTERM)  # as services.stop does
        supervisor.wait(10)  # the supervisor ends with its service
        assert "exited with status 3; starting it again" in supervisor.stdout.read()
        time.sleep(1)
        assert len(starts.read_text().splitlines()) == 2  # not started again once stopped
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
