"""The registry API at the bench's registry size (issue 21): the service as `make up` starts it, over loopback.

- `idtype-value` by national id: latency of one search, p50 and p95 (target p95 <= 50 ms);
- a `predicate` search answering a page of 100 (target p95 <= 300 ms);
- sustained requests per second for one client over 30 s (a bounded loop, four connections at once);
- the service's peak resident memory.
A client of the bench's own (no rate limit to speak of) is used, so the figures are the service's, not its limits.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.report import PeakMemory

SAMPLE = 200
PREDICATE_SAMPLE = 50
SUSTAINED_SECONDS = 30
CONNECTIONS = 4
CLIENT = "bench-partner"
IDTYPE_TARGET_MS, PREDICATE_TARGET_MS = 50.0, 300.0


def bench_registry_api(instance: Any) -> None:
    from benefitflow.core import db
    from benefitflow.registry_api import clients
    from benefitflow_dev import services, stack

    _bench_client(instance.home / "registry-api-bench-clients.yaml")
    stack.start_registry_api(instance)
    try:
        with db.transaction() as cur:
            cur.execute("SELECT national_id FROM registry.individuals WHERE national_id IS NOT NULL"
                        " ORDER BY random() LIMIT %s", (SAMPLE,))
            national_ids = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT DISTINCT region FROM registry.individuals WHERE region IS NOT NULL")
            regions = [row[0] for row in cur.fetchall()]
        secret = json.loads(instance.registry_api_secrets.read_text())[CLIENT]
        url = instance.registry_api_url
        with httpx.Client(base_url=url, timeout=30) as http:
            bearer = http.post("/oauth2/client/token", data={"grant_type": "client_credentials", "client_id": CLIENT,
                                                             "client_secret": secret}).json()["access_token"]
            headers = {"Authorization": f"Bearer {bearer}"}
            pid = services.pid_of(instance, services.registry_api_service(instance).name)
            with PeakMemory(pid) as peak:
                print(f"\nbenefitflow bench: the registry API (DCI sync search) over {url}, "
                      f"{len(national_ids)} national ids, {len(regions)} regions")
                by_id = [_timed(http, headers, _idtype(national_id)) for national_id in national_ids]
                _print("idtype-value (national id)", by_id, IDTYPE_TARGET_MS)
                pages = [_timed(http, headers, _predicate(random.choice(regions), page))
                         for page in random.choices(range(1, 50), k=PREDICATE_SAMPLE)]
                _print("predicate, a page of 100", pages, PREDICATE_TARGET_MS)
                answered = _sustained(url, headers, national_ids)
                print(f"  sustained, one client, {CONNECTIONS} connections for {SUSTAINED_SECONDS} s: "
                      f"{answered / SUSTAINED_SECONDS:.0f} requests/s ({answered} answered, each one audited)")
            print(f"  the service's peak resident memory: {peak.peak_bytes / 2**20:.0f} MiB")
    finally:
        services.stop(instance, services.registry_api_service(instance).name)
        os.environ.pop(clients.CLIENTS_VARIABLE, None)
        clients.settings.cache_clear()


def _bench_client(path: Path) -> None:
    from benefitflow.registry_api import clients

    shipped = yaml.safe_load(clients.CLIENTS_FILE.read_text())
    shipped["clients"][CLIENT] = {"record_types": ["Member", "Group"], "attributes": "*",
                                  "query_types": ["idtype-value", "predicate", "expression"],
                                  "max_page_size": 100, "requests_per_minute": 10_000_000}
    path.write_text(yaml.safe_dump(shipped, sort_keys=False))
    os.environ[clients.CLIENTS_VARIABLE] = str(path)  # the service started next inherits it
    clients.settings.cache_clear()


def _message(criteria: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {"header": {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": now, "action": "search",
                       "sender_id": CLIENT, "total_count": 1},
            "message": {"transaction_id": uuid.uuid4().hex[:20], "search_request": [
                {"reference_id": "1", "timestamp": now, "search_criteria": criteria}]}}


def _idtype(national_id: str) -> dict[str, Any]:
    return _message({"query_type": "idtype-value", "query": {"type": "UIN", "value": national_id}})


def _predicate(region: str, page: int) -> dict[str, Any]:
    return _message({"query_type": "predicate", "pagination": {"page_size": 100, "page_number": page}, "query": [
        {"seq_num": 1, "expression1": {"attribute_name": "region", "operator": "eq", "attribute_value": region},
         "condition": "and", "expression2": {"attribute_name": "age", "operator": "ge", "attribute_value": "60"}}]})


def _timed(http: httpx.Client, headers: dict[str, str], body: dict[str, Any]) -> float:
    began = time.perf_counter()
    answer = http.post("/registry/sync/search", json=body, headers=headers)
    milliseconds = (time.perf_counter() - began) * 1000
    [item] = answer.json()["message"]["search_response"]
    if answer.status_code != 200 or item["status"] != "succ":
        raise SystemExit(f"benefitflow bench: the registry API refused a search: {answer.text[:300]}")
    return milliseconds


def _print(label: str, timings: list[float], target: float) -> None:
    timings = sorted(timings)
    p50, p95 = timings[len(timings) // 2], timings[int(len(timings) * 0.95) - 1]
    print(f"  {label:<28} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   (target p95 <= {target:.0f} ms: "
          f"{'met' if p95 <= target else 'MISSED'})")


def _sustained(url: str, headers: dict[str, str], national_ids: list[str]) -> int:
    deadline = time.monotonic() + SUSTAINED_SECONDS
    counts = [0] * CONNECTIONS

    def loop(slot: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < deadline:
                _timed(http, headers, _idtype(random.choice(national_ids)))
                counts[slot] += 1

    threads = [threading.Thread(target=loop, args=(slot,)) for slot in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)
