"""Superset as managers use it: the bundle loads, charts answer as the marts say, regions stay apart, no more."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
import requests
import yaml

from benefitflow.core import config
from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
from benefitflow.payments.payroll import WORKFLOW as PAYROLL
from benefitflow.payments.payroll import payroll_dir
from benefitflow.payments.payroll_reconciliation import WORKFLOW as RECONCILIATION
from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows.direct import run_steps as run_upload
from benefitflow_dev import services, superset_setup
from benefitflow_dev.provider_answers import paid, unpaid, write_answers
from tests.integration.programme_data import HEADER, plan_document, query, run, tag

pytestmark = pytest.mark.e2e

NORTH = "North"  # the demo registry's northern region (benefitflow_dev.synthetic.PLACES_BY_REGION), as RLS names it
PROGRAMME_CHARTS = ("Beneficiaries", "Active beneficiaries", "Beneficiaries by status", "Beneficiaries by plan",
                    "Beneficiaries by region", "Enrolments over time", "Beneficiaries by age band and sex",
                    "Plan capacity used")
PAYMENT_CHARTS = ("Amount due", "Amount paid", "Reconciliation rate", "Failed payments",
                  "Amount due and paid by cycle and plan", "Reconciliation rate by cycle",
                  "Failed payments by cycle and region", "Payrolls by status (all regions)",
                  "Payment cycles (all regions)", "Payrolls (all regions)")
DATASETS_DIR = superset_setup.ASSETS_DIR / "datasets" / "benefitflow_marts"


# -- data: two regions' people through the platform's own workflows --------------------------------
def register_people() -> dict[str, list[str]]:
    """Households of three (a head born 1950, a spouse born 1985, a daughter born 2015): three in North, two in South.

    Returns region -> household codes.
    """
    households: dict[str, list[str]] = {NORTH: [], "South": []}
    rows = []
    for region, count in ((NORTH, 3), ("South", 2)):
        for number in range(count):
            code, surname = f"SS{tag()}", f"Wekesa{tag()}"
            day, place = number + 1, f"{region[0]}-{number + 1:03d}"
            where = f"{region},{{}},Place {place},{place}"
            rows += [f"Amina,{surname},1950-01-0{day},F,{code},1,HEAD,{where.format('severe' if day == 1 else 'none')}",
                     f"Juma,{surname},1985-02-0{day},M,{code},2,SPOUSE,{where.format('none')}",
                     f"Neema,{surname},2015-03-0{day},F,{code},0,DAUGHTER,{where.format('none')}"]
            households[region].append(code)
    path = config.inbox() / f"superset-people-{tag()}.csv"
    path.write_text("\n".join([f"{HEADER},location_name,location_code", *rows]) + "\n")
    run_upload(INDIVIDUALS, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
               run_id=tag())
    return households


def pay(workflow, checker: str | None = "payment_checker", **options: Any) -> dict:
    return run(workflow, checker=checker, **options)


def reconcile(payroll: str, failing: set[str]) -> None:
    """The provider answers the payroll file: the bills in `failing` unpaid, every other one paid."""
    target = config.inbox() / f"{payroll}-answers-{tag()}.csv"
    write_answers(payroll_dir() / f"{payroll}.csv", target,
                  lambda number, row: unpaid() if row["Code"] in failing else paid(row, f"RC-{row['Code']}",
                                                                                   "2026-03-31"))
    run_upload(RECONCILIATION, file=target.name, options={"payroll": payroll, "on_invalid_rows": "reject_file"},
               maker="maker", checker="payment_checker", run_id=tag())


@pytest.fixture(scope="module")
def programme_data(database) -> None:
    """An INDIVIDUAL plan (some suspended) paid over two cycles, and a GROUP plan with North's households active.

    Cycle 1 of the INDIVIDUAL plan: a rejected payroll, then one reconciled with one failure in each region;
    cycle 2: a payroll approved, not yet paid. The GROUP plan bills its active (North) households once.
    """
    households = register_people()
    everyone = {"all": [{"field": "household_code", "op": "in", "value": households[NORTH] + households["South"]}]}
    individual, group = f"SI-{tag()}", f"SG-{tag()}"
    run(DEFINE, plan=plan_document(individual, name=f"Support {individual}", max_beneficiaries=40))
    run(ENROLMENT, plan=individual, target_status="ACTIVE", criteria=everyone)
    run(STATUS, plan=individual, status="SUSPENDED", reason="moved away", criteria={"all": [
        {"field": "role", "op": "=", "value": "SPOUSE"},
        {"field": "household_code", "op": "in", "value": households["South"]}]})
    run(DEFINE, plan=plan_document(group, name=f"Households {group}", type="GROUP", max_beneficiaries=10,
                                   entitlement={"fixed_amount": "800.00"}))
    run(ENROLMENT, plan=group, target_status="POTENTIAL", criteria=everyone)
    run(STATUS, plan=group, status="ACTIVE", reason="registered at the pay point", criteria={"all": [
        {"field": "household_code", "op": "in", "value": households[NORTH]}]})

    pay(CYCLE, plan=individual, cycle="C1", period_start="2026-03-01", period_end="2026-03-31")
    pay(PAYROLL, checker=None, cycle="C1", plan=individual)  # rejected: its bills stay free
    first = pay(PAYROLL, cycle="C1", plan=individual, payment_point="Agent North")["proposal"]["payroll"]
    failing = {code for (code,) in query(
        "SELECT min(bill_code) FROM marts.mart_payments WHERE payroll_name = %s GROUP BY region", first)}
    reconcile(first, failing)
    pay(CYCLE, plan=individual, cycle="C2", period_start="2026-04-01", period_end="2026-04-30")
    pay(PAYROLL, cycle="C2", plan=individual, payment_point="Agent South")
    pay(CYCLE, plan=group, cycle="G1", period_start="2026-03-01", period_end="2026-03-31")


@pytest.fixture(scope="module")
def superset(superset_prepared, programme_data):
    """This module's Superset server, started after its data (Superset caches chart data per process).

    `superset_prepared` (conftest) ran `prepare` twice, as a second `make up` would."""
    superset_setup.start(superset_prepared)
    yield superset_prepared
    for service in services.superset_services(superset_prepared):
        services.stop(superset_prepared, service.name)


# -- Superset's REST API -----------------------------------------------------------------------------
def session_for(instance, username: str) -> requests.Session:
    session = requests.Session()
    response = session.post(f"{instance.superset_url}/api/v1/security/login", json={
        "username": username, "password": instance.user_password(username), "provider": "db", "refresh": False})
    response.raise_for_status()
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    # Writes other than chart data need Superset's CSRF token (and the session cookie it comes with).
    token = session.get(f"{instance.superset_url}/api/v1/security/csrf_token/")
    token.raise_for_status()
    session.headers.update({"X-CSRFToken": token.json()["result"], "Referer": instance.superset_url})
    return session


def listing(instance, session: requests.Session, what: str) -> list[dict]:
    response = session.get(f"{instance.superset_url}/api/v1/{what}/", params={"q": "(page_size:100)"})
    response.raise_for_status()
    return response.json()["result"]


def charts(instance, session: requests.Session) -> dict[str, int]:
    return {chart["slice_name"]: chart["id"] for chart in listing(instance, session, "chart")}


def chart_rows(instance, session: requests.Session, name: str) -> list[dict]:
    """What the chart shows, from its saved query context (what the dashboard and CSV export use)."""
    response = session.get(f"{instance.superset_url}/api/v1/chart/{charts(instance, session)[name]}/data/")
    assert response.status_code == 200, (name, response.text)
    [result] = response.json()["result"]
    return result["data"]


def ad_hoc_query(instance, session: requests.Session, dataset: str, query_object: dict) -> requests.Response:
    datasets = {d["table_name"]: d["id"] for d in listing(instance, session, "dataset")}
    return session.post(f"{instance.superset_url}/api/v1/chart/data", json={
        "datasource": {"id": datasets[dataset], "type": "table"}, "queries": [
            {"columns": [], "metrics": [], "filters": [], "row_limit": 10000, **query_object}],
        "result_format": "json", "result_type": "full"})


# -- what the marts say, for everyone or for one region -------------------------------------------------
Check = Callable[[list[dict], str | None], None]


def marts(statement: str, region: str | None) -> list[tuple]:
    """Run `statement`, its `{scope}` replaced by the region's condition (`true`: every region)."""
    return query(statement.format(scope="region = %s" if region else "true"), *([region] if region else []))


def normal(value: Any) -> Any:
    """Numbers as Superset's JSON and PostgreSQL give them compare equal (to 6 decimals); text stays text."""
    return round(float(value), 6) if isinstance(value, int | float | Decimal) and not isinstance(value, bool) else value


def big_number(table: str, expression: str) -> Check:
    def check(rows: list[dict], region: str | None) -> None:
        [(expected,)] = marts(f"SELECT {expression} FROM marts.{table} WHERE {{scope}}", region)
        [row] = rows
        assert normal(next(iter(row.values()))) == normal(expected) and expected

    return check


def grouped(table: str, keys: list[str] | dict[str, str], measures: dict[str, str], where: str = "true") -> Check:
    """Charts with one row per group: each group's measures (chart label -> SQL) as the mart computes them.

    `keys` are columns of the mart, or chart label -> SQL for the dataset's calculated columns.
    """
    keys = keys if isinstance(keys, dict) else {key: key for key in keys}

    def check(rows: list[dict], region: str | None) -> None:
        expected = marts(f"SELECT {', '.join(keys.values())}, {', '.join(measures.values())} FROM marts.{table}"
                         f" WHERE {{scope}} AND {where} GROUP BY {', '.join(map(str, range(1, len(keys) + 1)))}",
                         region)
        shown = {tuple(row[k] for k in keys): tuple(normal(row[label]) for label in measures) for row in rows}
        assert shown == {tuple(row[:len(keys)]): tuple(map(normal, row[len(keys):])) for row in expected}
        assert expected, f"no data behind the chart on {table} by {keys}"

    return check


def pivoted(table: str, key: str, series: str, measures: dict[str, str]) -> Check:
    """Pivoted charts: a column per series value (`metric, value` when several metrics share the chart)."""

    def check(rows: list[dict], region: str | None) -> None:
        expected = {}
        for key_value, series_value, *values in marts(f"SELECT {key}, {series}, {', '.join(measures.values())}"
                                                      f" FROM marts.{table} WHERE {{scope}} GROUP BY 1, 2", region):
            for label, value in zip(measures, values, strict=True):
                column = f"{label}, {series_value}" if len(measures) > 1 else series_value
                expected[(key_value, column)] = normal(value)
        shown = {(row[key], column): normal(value) for row in rows for column, value in row.items()
                 if column != key and value is not None}
        assert shown == expected and expected

    return check


def listed(table: str, columns: list[str]) -> Check:
    """Tables of the mart's rows: every row with the columns shown."""

    def check(rows: list[dict], region: str | None) -> None:
        expected = marts(f"SELECT {', '.join(columns)} FROM marts.{table} WHERE {{scope}}", region)
        shown = sorted(tuple(normal(row[c]) for c in columns) for row in rows)
        assert shown == sorted(tuple(map(normal, row)) for row in expected) and expected

    return check


def enrolments_by_plan(rows: list[dict], region: str | None) -> None:
    """A line per plan over the days of enrolment: each plan's points add up to its beneficiaries."""
    expected = marts("SELECT plan_name, count(*) FROM marts.mart_beneficiaries WHERE {scope} GROUP BY 1", region)
    shown: dict[str, float] = {}
    for row in rows:
        for column, value in row.items():
            if column != "enrolled_at" and value is not None:
                shown[column] = shown.get(column, 0) + value
    assert shown == {name: float(count) for name, count in expected} and expected


ACTIVE = "count(*) FILTER (WHERE status = 'ACTIVE')"
RATE = ("CAST(count(*) FILTER (WHERE status IN ('PAID', 'FAILED')) AS numeric)"
        " / count(*) FILTER (WHERE status <> 'CANCELLED')")
PAID_RATE = "CAST(count(*) FILTER (WHERE status = 'PAID') AS numeric) / count(*) FILTER (WHERE status <> 'CANCELLED')"
PLAN_CYCLE = {"plan_cycle": "plan_code || ' ' || cycle_code"}  # a calculated column of the mart_payments dataset
CHECKS: dict[str, Check] = {
    "Beneficiaries": big_number("mart_beneficiaries", "count(*)"),
    "Active beneficiaries": big_number("mart_beneficiaries", ACTIVE),
    "Beneficiaries by status": grouped("mart_beneficiaries", ["status"], {"count": "count(*)"}),
    "Beneficiaries by plan": grouped("mart_beneficiaries", ["plan_name"],
                                     {"count": "count(*)", "active_beneficiaries": ACTIVE}),
    "Beneficiaries by region": grouped("mart_beneficiaries", ["region"],
                                       {"count": "count(*)", "active_beneficiaries": ACTIVE}),
    "Enrolments over time": enrolments_by_plan,
    "Beneficiaries by age band and sex": pivoted("mart_beneficiaries", "age_band", "sex", {"count": "count(*)"}),
    "Plan capacity used": grouped("mart_plan_capacity", ["plan_code", "plan_name", "max_beneficiaries"], {
        "sum_beneficiaries": "sum(beneficiaries)", "sum_active_beneficiaries": "sum(active_beneficiaries)",
        "capacity_used": "CAST(sum(beneficiaries) AS numeric) / NULLIF(max(max_beneficiaries), 0)"}),
    "Amount due": big_number("mart_payments", "sum(amount_due)"),
    "Amount paid": big_number("mart_payments", "sum(amount_paid)"),
    "Reconciliation rate": big_number("mart_payments", RATE),
    "Failed payments": big_number("mart_payments", "count(*) FILTER (WHERE status = 'FAILED')"),
    "Amount due and paid by cycle and plan": grouped("mart_payments", PLAN_CYCLE, {
        "sum_amount_due": "sum(amount_due)", "sum_amount_paid": "sum(amount_paid)"}),
    "Reconciliation rate by cycle": grouped("mart_payments", PLAN_CYCLE, {
        "reconciliation_rate": RATE, "paid_rate": PAID_RATE}),
    "Failed payments by cycle and region": grouped(
        "mart_payments", ["plan_code", "cycle_code", "region", "payment_point"],
        {"failed_bills": "count(*)", "sum_amount_failed": "sum(amount_due)"}, where="status = 'FAILED'"),
    "Payrolls by status (all regions)": grouped("mart_payrolls", ["status"], {"count": "count(*)"}),
    "Payment cycles (all regions)": listed("mart_payment_cycles", [
        "plan_code", "cycle_code", "bills", "amount_due", "amount_paid", "amount_failed", "bills_held", "bills_open",
        "reconciliation_rate", "paid_rate"]),
    "Payrolls (all regions)": listed("mart_payrolls", [
        "payroll_name", "status", "bills", "total_amount", "amount_paid", "amount_failed", "bills_open",
        "reconciliation_rate"]),
}
# Charts on marts without a region column: every manager sees every region's rows there.
NATIONAL_CHARTS = {name for name in CHECKS if name.endswith("(all regions)")}


# -- tests ------------------------------------------------------------------------------------------------
def test_the_bundle_loads_once(superset) -> None:
    admin = session_for(superset, "admin")
    names = list(charts(superset, admin))
    assert len(names) == len(set(names))
    assert set(CHECKS) == {*PROGRAMME_CHARTS, *PAYMENT_CHARTS} <= set(names)
    listed_dashboards = listing(superset, admin, "dashboard")
    dashboards = {d["dashboard_title"]: d for d in listed_dashboards}
    titles = [d["dashboard_title"] for d in listed_dashboards]
    for title, slug, wanted in [("Operations", "operations", None),
                                ("Programme overview", "programme-overview", PROGRAMME_CHARTS),
                                ("Payments", "payments", PAYMENT_CHARTS)]:
        assert titles.count(title) == 1
        assert dashboards[title]["slug"] == slug and dashboards[title]["published"]
        if wanted is None:
            continue
        shown = admin.get(f"{superset.superset_url}/api/v1/dashboard/{slug}/charts")
        assert shown.status_code == 200, shown.text
        assert sorted(c["slice_name"] for c in shown.json()["result"]) == sorted(wanted)


def test_native_filters_target_the_imported_datasets_and_spare_charts_without_a_region(superset) -> None:
    admin = session_for(superset, "admin")
    datasets = {d["id"]: d["table_name"] for d in listing(superset, admin, "dataset")}
    chart_ids = charts(superset, admin)
    for slug, national in (("programme-overview", set()),
                           ("payments", {n for n in PAYMENT_CHARTS if n.endswith("(all regions)")})):
        dashboard = admin.get(f"{superset.superset_url}/api/v1/dashboard/{slug}").json()["result"]
        position = json.loads(dashboard["position_json"])
        placed = {node["meta"]["sliceName"]: node["meta"]["chartId"] for node in position.values()
                  if isinstance(node, dict) and node.get("type") == "CHART"}
        assert placed == {name: chart_ids[name] for name in placed}  # the imported charts' ids, by uuid
        filters = {f["name"]: f for f in json.loads(dashboard["json_metadata"])["native_filter_configuration"]}
        assert {"Plan", "Region"} <= set(filters)
        for f in filters.values():
            [target] = f["targets"]
            assert datasets[target["datasetId"]] in ("mart_beneficiaries", "mart_payments")
        assert sorted(filters["Region"]["scope"]["excluded"]) == sorted(chart_ids[name] for name in national)


@pytest.mark.parametrize("name", list(CHECKS))
def test_a_managers_chart_shows_what_the_marts_say(superset, name) -> None:
    manager = session_for(superset, "manager")
    CHECKS[name](chart_rows(superset, manager, name), None)
    exported = manager.get(f"{superset.superset_url}/api/v1/chart/{charts(superset, manager)[name]}/data/",
                           params={"format": "csv"})
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv"), exported.text


@pytest.mark.parametrize("name", list(CHECKS))
def test_the_north_managers_chart_shows_north_only(superset, name) -> None:
    north = session_for(superset, "manager_north")
    CHECKS[name](chart_rows(superset, north, name), None if name in NATIONAL_CHARTS else NORTH)


def regional_datasets() -> list[str]:
    """Every dataset of the bundle with a region column: row-level security must narrow each one."""
    documents = [yaml.safe_load(path.read_text()) for path in sorted(DATASETS_DIR.glob("*.yaml"))]
    return [d["table_name"] for d in documents if any(c["column_name"] == "region" for c in d["columns"])]


def test_the_north_manager_gets_north_rows_of_every_regional_dataset_and_the_manager_all(superset) -> None:
    regions = query("SELECT DISTINCT region FROM marts.mart_beneficiaries WHERE region IS NOT NULL")
    assert len(regions) >= 2 and (NORTH,) in regions
    manager, north = session_for(superset, "manager"), session_for(superset, "manager_north")
    regional = regional_datasets()
    assert {"mart_beneficiaries", "mart_payments", "mart_registry_individuals"} <= set(regional)
    assert set(regional) <= {d["table_name"] for d in listing(superset, north, "dataset")}
    count = {"expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": "count"}
    for dataset in regional:
        counts = {"columns": ["region"], "metrics": [count], "orderby": [[count, False]]}
        everyone = ad_hoc_query(superset, manager, dataset, counts)
        assert everyone.status_code == 200, everyone.text
        assert {(r["region"], r["count"]) for r in everyone.json()["result"][0]["data"]} == set(
            query(f"SELECT region, count(*) FROM marts.{dataset} GROUP BY 1"))
        only_north = ad_hoc_query(superset, north, dataset, counts)
        assert only_north.status_code == 200, only_north.text
        assert [(r["region"], r["count"]) for r in only_north.json()["result"][0]["data"]] == query(
            f"SELECT region, count(*) FROM marts.{dataset} WHERE region = %s GROUP BY 1", NORTH)
        # A WHERE of the caller's own cannot widen the region: it is ANDed with the row-level security clause.
        widened = ad_hoc_query(superset, north, dataset, {**counts, "extras": {"where": "1 = 1 OR region <> 'North'"}})
        assert widened.status_code == 200, widened.text
        assert widened.json()["result"][0]["data"] == only_north.json()["result"][0]["data"]
    # The CSV export of a chart carries the same restriction.
    failed = charts(superset, north)["Failed payments by cycle and region"]
    exported = north.get(f"{superset.superset_url}/api/v1/chart/{failed}/data/", params={"format": "csv"})
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows and {row["Region"] for row in rows} == {NORTH}, exported.text[:300]  # columns by verbose name


@pytest.mark.parametrize("username", ["manager", "manager_north"])
def test_managers_read_the_marts_and_nothing_else(superset, username) -> None:
    session = session_for(superset, username)
    url = superset.superset_url
    datasets = listing(superset, session, "dataset")
    assert datasets and {d["schema"] for d in datasets} == {"marts"}
    database_id = session.get(f"{url}/api/v1/database/").json()["ids"][0]
    assert session.get(f"{url}/api/v1/database/{database_id}/connection").status_code == 403
    assert session.get(f"{url}/api/v1/security/roles/").status_code == 403
    assert session.get(f"{url}/api/v1/rowlevelsecurity/").status_code == 403
    # No SQL Lab, no datasets of their own, no sub-queries smuggled into a chart's SQL.
    sql_lab = session.post(f"{url}/api/v1/sqllab/execute/", json={
        "database_id": database_id, "sql": "SELECT * FROM ledger.individual_versions", "runAsync": False})
    assert sql_lab.status_code in (401, 403), sql_lab.text
    new_dataset = session.post(f"{url}/api/v1/dataset/", json={
        "database": database_id, "schema": "ledger", "table_name": "individual_versions"})
    assert new_dataset.status_code in (401, 403), new_dataset.text
    for smuggled in [
        {"metrics": [{"expressionType": "SQL", "label": "n",
                      "sqlExpression": "(SELECT count(*) FROM ledger.individual_versions)"}]},
        {"metrics": ["count"], "extras": {"where": "region IN (SELECT region FROM ledger.individual_versions)"}},
        {"metrics": ["count"], "extras": {"where": "1 = 1) OR (1 = 1"}},
    ]:
        answer = ad_hoc_query(superset, session, "mart_beneficiaries", smuggled)
        assert answer.status_code in (400, 403), (smuggled, answer.text)


@pytest.mark.parametrize("username", ["manager", "manager_north"])
def test_managers_save_their_own_chart_and_dashboard_and_rls_still_applies(superset, username) -> None:
    session, url = session_for(superset, username), superset.superset_url
    dataset = {d["table_name"]: d["id"] for d in listing(superset, session, "dataset")}["mart_beneficiaries"]
    count = {"expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": "people"}
    form = {"datasource": f"{dataset}__table", "viz_type": "table", "query_mode": "aggregate",
            "groupby": ["region"], "metrics": [count]}
    query_context = {"datasource": {"id": dataset, "type": "table"}, "force": True, "form_data": form,
                     "queries": [{"columns": ["region"], "metrics": [count], "filters": [], "row_limit": 1000}],
                     "result_format": "json", "result_type": "full"}
    title = f"Mine {uuid.uuid4().hex[:6]}"
    dashboard = session.post(f"{url}/api/v1/dashboard/", json={"dashboard_title": title, "published": False})
    assert dashboard.status_code == 201, dashboard.text
    chart = session.post(f"{url}/api/v1/chart/", json={
        "slice_name": title, "viz_type": "table", "datasource_id": dataset, "datasource_type": "table",
        "params": json.dumps(form), "query_context": json.dumps(query_context),
        "dashboards": [dashboard.json()["id"]]})
    assert chart.status_code == 201, chart.text
    try:
        shown = session.get(f"{url}/api/v1/chart/{chart.json()['id']}/data/")
        assert shown.status_code == 200, shown.text
        rows = {(row["region"], row["people"]) for row in shown.json()["result"][0]["data"]}
        north_only = username == "manager_north"
        assert rows == set(query("SELECT region, count(*) FROM marts.mart_beneficiaries"
                                 + (" WHERE region = %s" if north_only else "") + " GROUP BY 1",
                                 *([NORTH] if north_only else [])))
        on_dashboard = session.get(f"{url}/api/v1/dashboard/{dashboard.json()['id']}/charts")
        assert [c["slice_name"] for c in on_dashboard.json()["result"]] == [title]
    finally:
        assert session.delete(f"{url}/api/v1/chart/{chart.json()['id']}").status_code == 200
        assert session.delete(f"{url}/api/v1/dashboard/{dashboard.json()['id']}").status_code == 200


def test_datasets_name_columns_of_their_mart_and_describe_them(programme_data) -> None:
    """A column that is not in the mart breaks its charts; a mart's region left out of its dataset would escape
    row-level security (superset/provision.py finds the regional datasets by their columns). The registry's
    programme variables are columns of mart_registry_individuals once people were imported (programme_data)."""
    for path in sorted(DATASETS_DIR.glob("*.yaml")):
        dataset = yaml.safe_load(path.read_text())
        actual = {c for (c,) in query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts'"
                                      " AND table_name = %s", dataset["table_name"])}
        named = [c["column_name"] for c in dataset["columns"] if not c["expression"]]  # calculated ones aside
        assert actual and set(named) <= actual, (path.name, set(named) - actual)
        assert ("region" in named) == ("region" in actual), path.name
        for item in dataset["columns"] + dataset["metrics"]:
            assert item["description"] and item["verbose_name"], (path.name, item)
        for metric in dataset["metrics"]:
            assert metric["d3format"], (path.name, metric["metric_name"])


# -- regions enforced by PostgreSQL (superset/regions.json): whatever SQL a chart carries ---------------------------
OTHER_REGIONS = ("South", "East", "West", "Central")  # the demo registry's other regions (register_people uses South)
PROBES = {
    "query_to_xml": "max(substr(query_to_xml('select region, count(*) n from marts.mart_registry_individuals"
                    " group by 1', true, false, '')::text, 1, 2000))",
    "table_to_xml": "max(substr(table_to_xml('marts.mart_registry_individuals', true, false, '')::text, 1, 2000))",
    "set_config": "max(set_config('role', 'superset_reader', false))",
}


@pytest.mark.parametrize("probe", list(PROBES))
def test_the_north_managers_sql_cannot_read_other_regions(superset, probe) -> None:
    north = session_for(superset, "manager_north")
    answer = ad_hoc_query(superset, north, "mart_registry_individuals", {"metrics": [
        {"expressionType": "SQL", "label": "probe", "sqlExpression": PROBES[probe]}]})
    # PostgreSQL refuses the function to the North login; nothing of any other region comes back either way.
    assert answer.status_code != 200 and "permission denied" in answer.text, answer.text[:500]
    assert not any(region in answer.text for region in OTHER_REGIONS), answer.text[:500]


def test_a_custom_sql_column_cannot_widen_the_north_managers_rows(superset) -> None:
    north = session_for(superset, "manager_north")
    column = {"expressionType": "SQL", "label": "where", "sqlExpression": "coalesce(region, '') || ' ' || sex"}
    count = {"expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": "count"}
    answer = ad_hoc_query(superset, north, "mart_registry_individuals", {
        "columns": [column], "metrics": [count], "extras": {"where": "region IS NOT NULL OR region IS NULL"}})
    assert answer.status_code == 200, answer.text
    shown = {row["where"].split(" ")[0] for row in answer.json()["result"][0]["data"]}
    assert shown == {NORTH}


@pytest.fixture
def manager_without_region(superset) -> Iterator[str]:
    """A Manager added the way an administrator would (Superset's security API), with no region role."""
    admin, url = session_for(superset, "admin"), superset.superset_url
    roles = admin.get(f"{url}/api/v1/security/roles/", params={"q": "(page_size:100)"}).json()["result"]
    username = f"nowhere_{uuid.uuid4().hex[:6]}"
    password = uuid.uuid4().hex
    created = admin.post(f"{url}/api/v1/security/users/", json={
        "username": username, "first_name": "No", "last_name": "Region", "email": f"{username}@benefitflow.invalid",
        "password": password, "active": True, "roles": [r["id"] for r in roles if r["name"] == "Manager"]})
    assert created.status_code == 201, created.text
    superset.secrets[f"user_{username}"] = password  # what session_for logs in with (this process only)
    yield username
    assert admin.delete(f"{url}/api/v1/security/users/{created.json()['id']}").status_code == 200


def test_a_manager_without_a_region_role_sees_no_regional_row(superset, manager_without_region) -> None:
    nowhere = session_for(superset, manager_without_region)
    count = {"expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": "count"}
    for dataset in regional_datasets():
        answer = ad_hoc_query(superset, nowhere, dataset, {"metrics": [count]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"][0]["data"] == [{"count": 0}], dataset
    # The marts without a region (plan-, cycle-, payroll-level) stay readable.
    plans = ad_hoc_query(superset, nowhere, "mart_benefit_plans", {"metrics": [count]})
    assert plans.status_code == 200 and plans.json()["result"][0]["data"] == [
        {"count": query("SELECT count(*) FROM marts.mart_benefit_plans")[0][0]}], plans.text
    assert "Beneficiaries" in charts(superset, nowhere)
    assert chart_rows(superset, nowhere, "Beneficiaries by region") == []


@pytest.mark.parametrize(("username", "login"), [("manager", "superset_reader"),
                                                  ("manager_north", "superset_region_north")])
def test_each_managers_queries_reach_postgresql_as_the_login_of_their_regions(superset, username, login) -> None:
    answer = ad_hoc_query(superset, session_for(superset, username), "mart_benefit_plans", {"metrics": [
        {"expressionType": "SQL", "label": "login", "sqlExpression": "max(current_user::text)"}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"][0]["data"] == [{"login": login}]


def test_the_marts_connection_is_stored_as_the_login_that_reads_no_region(superset) -> None:
    """Fail closed: a query the connection mutator does not widen (no user, a mutator not loaded) reads no
    regional row; the managers' answers above show it is widened for each of them."""
    with closing(psycopg2.connect(superset.database_url("superset", "superset"))) as conn, conn.cursor() as cur:
        cur.execute("SELECT sqlalchemy_uri FROM dbs WHERE database_name = 'benefitflow_marts'")
        (uri,) = cur.fetchone()
    assert urlsplit(uri).username == "superset_no_region"
