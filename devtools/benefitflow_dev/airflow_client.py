"""A small client for Airflow's REST API, as users' scripts would use it (demo data, end-to-end tests)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests

FINISHED = {"success", "failed"}


@dataclass
class AirflowClient:
    base_url: str
    username: str
    password: str
    _token: str | None = field(default=None, init=False)

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = requests.post(f"{self.base_url}/auth/token",
                                     json={"username": self.username, "password": self.password}, timeout=30)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.base_url}/api/v2{path}", headers=self._headers(), timeout=60, **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until the dag-processor has registered the DAG (and not marked it stale)."""
        deadline = time.monotonic() + timeout
        while not self._registered(dag_id):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} was not registered by the dag-processor within {timeout:.0f} s")
            time.sleep(1)

    def wait_for_dags(self, count: int, timeout: float = 180) -> list[str]:
        """Wait until the dag-processor has registered `count` DAGs, none stale; their ids."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.request("GET", "/dags", params={"limit": 1000})
            dags = response.json().get("dags", []) if response.status_code == 200 else []
            registered = sorted(dag["dag_id"] for dag in dags if not dag.get("is_stale"))
            if len(registered) >= count:
                return registered
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(registered)} of {count} DAGs registered within {timeout:.0f} s")
            time.sleep(1)

    def _registered(self, dag_id: str) -> bool:
        response = self.request("GET", f"/dags/{dag_id}")
        return response.status_code == 200 and not response.json().get("is_stale")

    def trigger(self, dag_id: str, conf: dict[str, Any], timeout: float = 180) -> requests.Response:
        """Trigger a run; on a loaded machine the dag-processor may mark a DAG stale for a while: wait it out."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
            if response.status_code != 404 or time.monotonic() > deadline:
                return response
            time.sleep(2)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        response = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {ti["task_id"]: ti["state"] for ti in response.json()["task_instances"]}

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, states: set[str],
                            timeout: float = 300) -> dict[str, str | None]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.task_states(dag_id, run_id)
            if current.get(task_id) in states:
                return current
            if self.run_state(dag_id, run_id) in FINISHED:
                raise AssertionError(f"run finished before {task_id} reached {states}: {current}")
            time.sleep(0.25)
        raise TimeoutError(f"{task_id} did not reach {states}: {self.task_states(dag_id, run_id)}")

    def run_state(self, dag_id: str, run_id: str) -> str:
        response = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return response.json()["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in FINISHED:
                return state
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} still {self.run_state(dag_id, run_id)}: {self.task_states(dag_id, run_id)}")

    def hitl_path(self, dag_id: str, run_id: str, task_id: str = "approve") -> str:
        return f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"

    def answer(self, dag_id: str, run_id: str, option: str, task_id: str = "approve") -> requests.Response:
        return self.request("PATCH", self.hitl_path(dag_id, run_id, task_id),
                            json={"chosen_options": [option], "params_input": {}})

    def wait_until_parked(self, dag_id: str, run_id: str, task_id: str = "approve", timeout: float = 600) -> None:
        """Wait for the approval request. An answer given at once may meet Airflow 3.3.2's resume race
        (stack notes): the step then fails and its retry reuses the answer, so no fixed wait is needed."""
        self.wait_for_task_state(dag_id, run_id, task_id, {"awaiting_input"}, timeout)

    def pending_approvals(self) -> list[dict[str, Any]]:
        response = self.request("GET", "/dags/~/dagRuns/~/hitlDetails", params={"response_received": "false"})
        response.raise_for_status()
        return response.json()["hitl_details"]
