"""Running one setup command and reporting it briefly."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from benefitflow_dev.instance import PROJECT_ROOT


def run(command: list[str], env: dict[str, str], what: str, cwd: Path = PROJECT_ROOT) -> None:
    started = time.monotonic()
    result = subprocess.run(command, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{tail}")
    print(f"  {what} ({time.monotonic() - started:.1f} s)", flush=True)
