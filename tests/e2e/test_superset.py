"""Superset as managers use it: the bundle loads, charts answer from the marts, nothing else is open."""

from __future__ import annotations

import pytest
import requests

from benefitflow import db
from benefitflow.platform import services, superset_setup

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def superset(database):
    superset_setup.prepare(database)
    superset_setup.prepare(database)  # a second `make up` must not duplicate anything
    superset_setup.start(database)
    yield database
    for service in services.superset_services(database):
        services.stop(database, service.name)


def session_for(instance, username: str) -> requests.Session:
    session = requests.Session()
    response = session.post(f"{instance.superset_url}/api/v1/security/login", json={
        "username": username, "password": instance.user_password(username), "provider": "db", "refresh": False})
    response.raise_for_status()
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def charts(instance, session: requests.Session) -> dict[str, int]:
    response = session.get(f"{instance.superset_url}/api/v1/chart/", params={"q": "(page_size:100)"})
    response.raise_for_status()
    return {chart["slice_name"]: chart["id"] for chart in response.json()["result"]}


def test_the_bundle_loads_once(superset) -> None:
    admin = session_for(superset, "admin")
    names = list(charts(superset, admin))
    assert len(names) == len(set(names)) >= 4
    dashboards = admin.get(f"{superset.superset_url}/api/v1/dashboard/").json()["result"]
    assert [d["dashboard_title"] for d in dashboards].count("Operations") == 1


def test_manager_sees_chart_data_equal_to_the_marts(superset) -> None:
    manager = session_for(superset, "manager")
    chart_ids = charts(superset, manager)
    response = manager.get(f"{superset.superset_url}/api/v1/chart/{chart_ids['Approvals (count)']}/data/")
    assert response.status_code == 200, response.text
    shown = next(iter(response.json()["result"][0]["data"][0].values()))
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM marts.mart_approvals")
        assert shown == cur.fetchone()[0]
    for name, chart_id in chart_ids.items():
        assert manager.get(f"{superset.superset_url}/api/v1/chart/{chart_id}/data/").status_code == 200, name


def test_manager_sees_only_marts_datasets_and_no_connection_or_roles(superset) -> None:
    manager = session_for(superset, "manager")
    datasets = manager.get(f"{superset.superset_url}/api/v1/dataset/").json()["result"]
    assert datasets and {d["schema"] for d in datasets} == {"marts"}
    database_id = manager.get(f"{superset.superset_url}/api/v1/database/").json()["ids"][0]
    assert manager.get(f"{superset.superset_url}/api/v1/database/{database_id}/connection").status_code == 403
    assert manager.get(f"{superset.superset_url}/api/v1/security/roles/").status_code == 403
