"""The CeleryExecutor with two workers that share only PostgreSQL, Redis and the file store (`make up EXECUTOR=celery`).

Run by the `celery` test tier (`scripts/test-tiers.sh`), whose services run with BENEFITFLOW_EXECUTOR=celery; the
same tier runs the registry, programme and payment workflow modules (marked `celery`) on those workers. Each worker
has its own working directory, Airflow home, scratch folder and copy of the dbt build output (benefitflow_dev.workers).
Which worker takes a step is steered as an operator drains a machine: Celery's own control messages stop a worker
consuming the default queue.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from benefitflow.core import db
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow_dev import services, workers
from benefitflow_dev.instance import Instance
from tests.e2e.people import DAG, committed_once, proposed, query

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.celery,
    pytest.mark.skipif(os.environ.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor",
                       reason="the services run the LocalExecutor: the `celery` tier runs these"),
]

BEFORE_APPROVAL = ("intake", "validate", "propose")


@pytest.fixture(scope="module")
def celery(airflow, database: Instance) -> Iterator[dict[str, str]]:
    """Worker name -> Celery node name; every worker serves the default queue again when the module ends."""
    nodes = {node.split("@")[0]: node for node in workers.wait_until_serving(database)}
    assert sorted(nodes) == ["worker-1", "worker-2"], nodes
    yield nodes
    for name in nodes:
        _restart_if_killed(database, name)
    nodes = {node.split("@")[0]: node for node in workers.wait_until_serving(database)}
    workers.set_consuming(database, "default", list(nodes.values()), consuming=True)


def only(database: Instance, celery: dict[str, str], name: str) -> None:
    """Only `name` takes tasks from the default queue (the other drained, as for a machine's maintenance)."""
    workers.set_consuming(database, "default", [celery[name]], consuming=True)
    others = [node for worker, node in celery.items() if worker != name]
    if others:
        workers.set_consuming(database, "default", others, consuming=False)
    serving = {node for node, queues in workers.active_queues(database).items() if "default" in queues}
    assert serving == {celery[name]}, f"the default queue is served by {serving}, not only {celery[name]}"


def _restart_if_killed(instance: Instance, name: str) -> None:
    service = services.celery_worker_service(instance, name)
    if services.pid_of(instance, service.name) is None:
        services.start(instance, service)


def hosts(client, run_id: str) -> dict[str, str]:
    """Task id -> the worker its last try ran on (Airflow's `hostname`, the worker's name here)."""
    response = client.request("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances")
    response.raise_for_status()
    return {ti["task_id"]: ti["hostname"] for ti in response.json()["task_instances"] if ti["hostname"]}


def test_the_steps_of_one_run_run_on_two_workers_that_share_only_the_database_broker_and_file_store(
        airflow, database, celery) -> None:
    """Intake, validation and the proposal on worker-1; after the approval, commit and publish on worker-2, which
    finds nothing worker-1 left on its disk: the upload's original and report are on the file store, the rest in
    PostgreSQL."""
    only(database, celery, "worker-1")
    run_id, region = proposed(airflow, database)
    only(database, celery, "worker-2")
    assert airflow("checker").answer(DAG, run_id, "Approve").status_code == 200
    assert airflow("checker").wait_for_run(DAG, run_id) == "success"

    ran_on = hosts(airflow("admin"), run_id)
    assert {ran_on[step] for step in BEFORE_APPROVAL} == {"worker-1"}, ran_on
    assert {ran_on["commit"], ran_on["publish"], ran_on["published"]} == {"worker-2"}, ran_on
    committed_once(run_id, region)
    assert database.worker_home("worker-1") != database.worker_home("worker-2")
    for name in celery:  # each read its own copy of the dbt build output
        assert (database.worker_home(name) / "dbt-target" / "manifest.json").exists()


def memory_holding(pid: int, secrets: dict[str, str]) -> set[str] | None:
    """Which of `secrets` are anywhere in the process' writable memory (its heap, stacks and anonymous maps); None
    when the process ended before it could be read (a task slot's short-lived child)."""
    needles = {what: secret.encode() for what, secret in secrets.items()}
    found: set[str] = set()
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
            for line in maps:
                span, permissions = line.split()[:2]
                if not permissions.startswith("rw"):
                    continue
                start, end = (int(address, 16) for address in span.split("-"))
                try:
                    memory.seek(start)
                    contents = memory.read(end - start)
                except OSError:
                    continue
                found |= {what for what, needle in needles.items() if needle in contents}
    except (FileNotFoundError, ProcessLookupError):
        return None
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process' memory needs root")
def test_no_worker_nor_the_task_slots_it_forks_holds_a_secret_of_airflows_services(airflow, database, celery) -> None:
    """A worker reads a configuration of its own (the broker's login only) and reaches Airflow through the execution
    API with each task's token, so a task (a fork of a slot) has no Fernet key, JWT or API secret, and no
    metadata-database login, to find in its memory. The scheduler, which needs them, shows that the scan finds them."""
    import psutil

    from tests.e2e.test_task_isolation import service_secrets

    run_id, _ = proposed(airflow, database)  # the workers have run steps
    secrets = service_secrets(database)
    scheduler = psutil.Process(services.pid_of(database, "airflow-scheduler"))  # and the supervisor it runs under
    assert any("metadata database owner's password" in (memory_holding(process.pid, secrets) or set())
               for process in [scheduler, *scheduler.children(recursive=True)])
    for name in celery:
        pid = services.pid_of(database, services.celery_worker_service(database, name).name)
        assert pid is not None, f"{name} is not running"
        root = psutil.Process(pid)
        assert memory_holding(root.pid, secrets) == set(), f"{name}: {root.cmdline()}"
        for process in root.children(recursive=True):
            assert memory_holding(process.pid, secrets) in (set(), None), f"{name}: {process.pid}"
    assert airflow("checker").answer(DAG, run_id, "Reject").status_code == 200


def test_a_worker_killed_in_the_middle_of_a_commit_leaves_it_to_the_other_and_nothing_is_done_twice(
        airflow, database, celery) -> None:
    """The commit starts on worker-1 and waits there at its proposal's lock, which the test holds; worker-1 and every
    process it started (the task's included) are then killed (a machine lost) before anything is committed. Airflow
    notices the missing heartbeats, the step's retry runs on worker-2, and the upload is committed exactly once."""
    import psutil

    only(database, celery, "worker-2")
    run_id, region = proposed(airflow, database)
    (upload_id,) = query("SELECT upload_id FROM intake.uploads WHERE run_id = %s", run_id)[0]
    only(database, celery, "worker-1")
    checker = airflow("checker")
    with db.session_lock(INDIVIDUALS.proposal_for({"upload_id": upload_id}).lock_key):
        assert checker.answer(DAG, run_id, "Approve").status_code == 200
        checker.wait_for_task_state(DAG, run_id, "commit", {"running"}, timeout=120)
        for _ in range(120):  # the commit's transaction waits for the lock
            if query("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
                     " AND datname = current_database()")[0][0]:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the commit never reached the proposal's lock")
        worker = services.celery_worker_service(database, "worker-1").name
        root = psutil.Process(services.pid_of(database, worker))
        for process in [*root.children(recursive=True), root]:  # a task runs in a process group of its own
            process.kill()
        services.stop(database, worker)  # reaps it and forgets its pid file
        assert query("SELECT count(*) FROM ledger.commits WHERE upload_id = %s", upload_id) == [(0,)]
    only(database, {"worker-2": celery["worker-2"]}, "worker-2")

    assert checker.wait_for_run(DAG, run_id, timeout=420) == "success"
    ran_on = hosts(airflow("admin"), run_id)
    assert ran_on["commit"] == "worker-2" and ran_on["publish"] == "worker-2", ran_on
    tries = airflow("admin").request("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/commit").json()
    assert tries["try_number"] == 2, tries
    committed_once(run_id, region)

