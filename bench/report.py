"""How the benchmarks measure and print: per-step time and peak memory, checks, one table per run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil


class PeakMemory:
    """Largest resident memory of any process of the run (or of the one process `pid`), sampled every 0.2 s."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self.peak_process = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> tuple[int, str]:
        found = (self.peak_bytes, self.peak_process)
        self.peak_bytes, self.peak_process = 0, ""
        return found

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.2):
            for process in psutil.process_iter(["pid", "name", "memory_info"]):
                info = process.info
                if self.pid is not None:
                    if info["pid"] != self.pid:
                        continue
                elif info["pid"] != me and not (info["name"] or "").startswith("postgres"):
                    continue
                rss = info["memory_info"].rss if info["memory_info"] else 0
                if rss > self.peak_bytes:
                    self.peak_bytes, self.peak_process = rss, "bench (python)" if info["pid"] == me else "postgres"


class Stages:
    """Times each step of a run (`on_step` of run_steps) with the peak memory during it."""

    def __init__(self, memory: PeakMemory) -> None:
        self.memory = memory
        self.timings: list[tuple[str, float, int, str]] = []

    def __call__(self, step: str, action: Callable[[], Any]) -> Any:
        self.memory.reset()
        began = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - began
        time.sleep(0.3)  # one more memory sample
        self.timings.append((step, seconds, *self.memory.reset()))
        return result


class Checks:
    """Each check printed as it is made; the bench fails at the end if any did not hold."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def __call__(self, label: str, holds: bool, detail: str) -> None:
        print(f"  check {label}: {detail}: {'ok' if holds else 'FAILED'}")
        if not holds:
            self.failed.append(f"{label} ({detail})")

    def settle(self) -> None:
        if self.failed:
            raise SystemExit("benefitflow bench: payment checks failed: " + "; ".join(self.failed))


def print_table(steps: list[tuple[str, float, int, str]], rows: int, total_label: str,
                floor: tuple[str, float, int, str] | None = None) -> None:
    total = sum(seconds for _, seconds, _, _ in steps)
    peak = max(steps, key=lambda t: t[2])
    print(f"\n  {'stage':<34} {'seconds':>8} {'rows/s':>12} {'peak MB':>8}  heaviest process")
    for step, seconds, peak_bytes, process in ([floor] if floor else []) + steps + [
            (total_label, total, peak[2], peak[3])]:
        print(f"  {step:<34} {seconds:8.1f} {rows / seconds:12,.0f} {peak_bytes / 2**20:8.0f}  {process}")
    if floor:
        print(f"  {total_label} / bare COPY floor: {total / floor[1]:.1f}x")


def stage_seconds(stages: Stages) -> float:
    return sum(seconds for _, seconds, _, _ in stages.timings)
