"""Run a Python snippet the way Airflow's supervisor runs a task process: its output and errors go to a socket,
not a pipe (a task process keeps its sockets and sheds every pipe it inherited: system_users.py)."""

from __future__ import annotations

import socket
import subprocess
import sys


def run_like_a_task(code: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        process = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdin=subprocess.DEVNULL,
                                   stdout=theirs.fileno(), stderr=theirs.fileno())
        theirs.close()
        with ours.makefile("rb") as output:
            said = output.read().decode()
    return subprocess.CompletedProcess(process.args, process.wait(), stdout=said, stderr="")
