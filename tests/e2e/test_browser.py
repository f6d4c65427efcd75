"""The platform in a real headless Chromium: a checker answers in Airflow's UI, managers read Superset's dashboards.

Real services only (the suite's own PostgreSQL, Airflow and Superset); the browser is Debian's
chromium driven by Playwright (see tests/e2e/browser.py). Screenshots of every test end up in
test-artifacts/screenshots/.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, Response, expect

from benefitflow.core import config, db
from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
from benefitflow.payments.payroll import WORKFLOW as PAYROLL
from benefitflow.payments.payroll import payroll_dir
from benefitflow.payments.payroll_reconciliation import WORKFLOW as RECONCILIATION
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.selftest.platform_selftest import WORKFLOW as SELFTEST
from benefitflow.workflows.declaration import Workflow
from benefitflow.workflows.direct import run_steps as run_request
from benefitflow.workflows.direct import run_steps as run_upload
from benefitflow_dev import superset_setup
from benefitflow_dev.instance import Instance
from benefitflow_dev.provider_answers import paid, unpaid, write_answers
from tests.e2e.browser import OpenPage, open_pending_request, screenshot, sign_in_to_airflow, sign_in_to_superset
from tests.e2e.people import HEADER
from tests.e2e.test_selftest_workflow import DAG_ID, audit_actions, committed_rows, decisions_for, start_run
from tests.integration.programme_data import plan_document

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.browser"]  # the browser fixtures: Chromium, a page per user, screenshots

# The number a "Big Number" chart shows, as SQL on the marts, by chart name. A chart added later
# needs only a row here to be checked against the database; without one it is still compared with
# the chart-data API and checked to render without errors.
BIG_NUMBER_SQL: dict[str, str] = {
    "Approvals (count)": "SELECT count(*) FROM marts.mart_approvals",
    "Median hours to decision":
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY hours_to_decision) FROM marts.mart_approvals",
    "Beneficiaries": "SELECT count(*) FROM marts.mart_beneficiaries",
    "Active beneficiaries": "SELECT count(*) FROM marts.mart_beneficiaries WHERE status = 'ACTIVE'",
    "Amount due": "SELECT sum(amount_due) FROM marts.mart_payments",
    "Amount paid": "SELECT sum(amount_paid) FROM marts.mart_payments",
    "Failed payments": "SELECT count(*) FROM marts.mart_payments WHERE status = 'FAILED'",
}
BIG_NUMBER_VIZ = {"big_number_total"}  # a trendline "big_number" shows its last point: not compared here
RUN_TIMEOUT_SECONDS = 600  # a whole run on two busy cores, with room to spare


# -- pages signed in as a user -----------------------------------------------------------------------------------
@pytest.fixture
def airflow_page(pages: OpenPage, airflow_services: Instance):
    def open_as(username: str) -> Page:
        page = pages(username)
        sign_in_to_airflow(page, airflow_services, username)
        return page

    return open_as


@pytest.fixture
def superset_page(pages: OpenPage, superset: Instance):
    def open_as(username: str) -> Page:
        page = pages(username)
        sign_in_to_superset(page, superset, username)
        return page

    return open_as


# -- Airflow: Required actions --------------------------------------------------------------------------------------
def click_and_answer(page: Page, option: str) -> Response:
    """Click an option's button; returns Airflow's answer to the PATCH the UI sends."""
    button = page.get_by_role("button", name=option, exact=True)
    expect(button).to_be_enabled()
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.url.endswith("/hitlDetails")) as answer:
        button.click()
    return answer.value


def hitl_detail(airflow, run_id: str) -> dict[str, Any]:
    admin = airflow("admin")
    response = admin.request("GET", admin.hitl_path(DAG_ID, run_id))
    response.raise_for_status()
    return response.json()


def test_checker_approves_on_the_required_actions_page_and_the_maker_cannot(
        airflow, airflow_services: Instance, inbox_file, airflow_page, request: pytest.FixtureRequest) -> None:
    maker, checker = airflow("maker"), airflow("checker")
    run_id = start_run(airflow, inbox_file, rows=3)
    maker.wait_until_parked(DAG_ID, run_id)

    maker_page = airflow_page("maker")
    open_pending_request(maker_page, airflow_services, run_id)
    refused = click_and_answer(maker_page, "Approve")
    assert refused.status == 403
    expect(maker_page.get_by_text("Access Denied").first).to_be_visible()
    screenshot(maker_page, f"{request.node.name}-maker-refused")
    assert hitl_detail(airflow, run_id)["response_received"] is False
    assert decisions_for(run_id) == [] and committed_rows(run_id) == 0

    checker_page = airflow_page("checker")
    open_pending_request(checker_page, airflow_services, run_id)
    expect(checker_page.get_by_text("rows to append:").first).to_be_visible()  # the proposal's summary is shown
    approved = click_and_answer(checker_page, "Approve")
    assert approved.status == 200, approved.text()
    expect(checker_page.get_by_text(re.compile(r"Response received at .* from checker")).first).to_be_visible()

    assert checker.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT_SECONDS) == "success", \
        checker.task_states(DAG_ID, run_id)
    detail = hitl_detail(airflow, run_id)
    assert (detail["chosen_options"], detail["responded_by_user"]["name"]) == (["Approve"], "checker")
    assert decisions_for(run_id) == [("APPROVED", "maker", "checker", "RegistryCheckers")]
    assert committed_rows(run_id) == 3
    assert ("checker", "selftest.decision", "APPROVED") in audit_actions(run_id)


# -- Superset: dashboards as managers see them ---------------------------------------------------------------------
@dataclass
class ShownChart:
    chart_id: int
    name: str
    viz_type: str
    error: str | None
    big_number: str | None


def superset_api(instance: Instance, username: str) -> requests.Session:
    session = requests.Session()
    response = session.post(f"{instance.superset_url}/api/v1/security/login", json={
        "username": username, "password": instance.user_password(username), "provider": "db", "refresh": False},
        timeout=60)
    response.raise_for_status()
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def dashboards_for_managers(instance: Instance) -> list[dict[str, Any]]:
    """Every published dashboard open to the Manager role (no role list, or one that names Manager)."""
    admin = superset_api(instance, "admin")
    response = admin.get(f"{instance.superset_url}/api/v1/dashboard/", params={"q": "(page_size:100)"}, timeout=60)
    response.raise_for_status()
    return [d for d in response.json()["result"]
            if d["published"] and (not d["roles"] or "Manager" in {role["name"] for role in d["roles"]})]


def charts_of(instance: Instance, dashboard_id: int) -> dict[int, str]:
    admin = superset_api(instance, "admin")
    response = admin.get(f"{instance.superset_url}/api/v1/dashboard/{dashboard_id}/charts", timeout=60)
    response.raise_for_status()
    return {chart["id"]: chart["slice_name"] for chart in response.json()["result"]}


def open_dashboard(page: Page, instance: Instance, dashboard: dict[str, Any]) -> None:
    # force=true: Superset caches chart data for minutes; the numbers must be today's marts.
    page.goto(f"{instance.superset_url}{dashboard['url']}?force=true")
    expect(page.locator('[data-test="dashboard-content-wrapper"]')).to_be_visible()


TABS = '[data-test="top-level-tabs"] [role="tab"], [data-test="dashboard-component-tabs"] [role="tab"]'


def each_tab(page: Page) -> Iterator[None]:
    """Stops once per tab of the dashboard (once when it has none): charts in hidden tabs are not drawn."""
    yield
    tabs = page.locator(TABS)
    index = 0
    while index < tabs.count():  # opening a tab can reveal tabs nested in it: count again each time
        tab = tabs.nth(index)
        if tab.is_visible() and tab.get_attribute("aria-selected") != "true":
            tab.click()
            yield
        index += 1


# A chart has settled when it shows an error, its "no results" notice or its drawing (the plugin's element has
# content: it is empty for a moment after the spinner goes), and no spinner.
SETTLED = """holder => {
    if (holder.querySelector('[data-test="loading-indicator"]')) return false;
    if (holder.querySelector('[role="alert"]')) return true;
    const slice = holder.querySelector('[data-test="slice-container"]');
    const plot = slice && slice.querySelector('[id^="chart-id-"]');
    return !!slice && (!!slice.querySelector('.ant-empty') || (!!plot && plot.childElementCount > 0));
}"""


def read_chart(page: Page, holder: Locator) -> ShownChart:
    # Superset draws only the charts near the viewport (dashboard virtualisation): bring each one into view.
    holder.scroll_into_view_if_needed()
    page.wait_for_function(SETTLED, arg=holder.element_handle())
    alerts = holder.locator('[role="alert"]')
    number = holder.locator(".header-line")
    return ShownChart(
        chart_id=int(holder.get_attribute("data-test-chart-id") or 0),
        name=holder.get_attribute("data-test-chart-name") or "",
        viz_type=holder.get_attribute("data-test-viz-type") or "",
        error=" / ".join(alerts.all_inner_texts()) if alerts.count() else None,
        big_number=number.first.inner_text().strip() if number.count() else None,
    )


def read_dashboard(page: Page, expected: Collection[int]) -> dict[int, ShownChart]:
    """Every chart the dashboard draws, tab by tab, once it has settled."""
    if expected:  # the layout comes after the page's frame: wait for the first chart's box
        expect(page.locator('[data-test="chart-grid-component"]').first).to_be_visible()
    shown: dict[int, ShownChart] = {}
    for _ in each_tab(page):
        for holder in page.locator('[data-test="chart-grid-component"]').all():
            chart_id = int(holder.get_attribute("data-test-chart-id") or 0)
            if chart_id not in shown and holder.is_visible():
                shown[chart_id] = read_chart(page, holder)
    return shown


SI_PREFIXES = {"y": -24, "z": -21, "a": -18, "f": -15, "p": -12, "n": -9, "µ": -6, "m": -3,
               "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18, "Z": 21, "Y": 24}


def parse_shown_number(text: str) -> tuple[float, float] | None:
    """A number as d3-format shows it ("1,234", "0.02", "1.2k", "−3", "45%"): (value, half its last digit)."""
    if text == "No data":
        return None
    match = re.fullmatch(r"([-−]?)([\d,]*)(?:\.(\d+))?\s*([a-zA-Zµ%]?)", text.strip())
    assert match, f"not a number: {text!r}"
    sign, whole, decimals, suffix = match.groups()
    assert suffix in {"", "%", *SI_PREFIXES}, f"unknown unit in {text!r}"
    scale = 0.01 if suffix == "%" else 10.0 ** SI_PREFIXES.get(suffix, 0)
    value = float(f"{whole.replace(',', '') or 0}.{decimals or 0}") * scale * (-1 if sign else 1)
    return value, 0.5 * 10.0 ** -len(decimals or "") * scale


def chart_data_value(api: requests.Session, instance: Instance, chart_id: int) -> float | None:
    """The single value of a big number chart, from the chart-data API on its saved query context."""
    response = api.get(f"{instance.superset_url}/api/v1/chart/{chart_id}/data/", params={"force": "true"}, timeout=120)
    assert response.status_code == 200, response.text
    row = response.json()["result"][0]["data"][0]
    return as_number(next(iter(row.values())))


def sql_value(statement: str) -> float | None:
    with db.transaction() as cur:
        cur.execute(statement)
        return as_number(cur.fetchone()[0])


def as_number(value: object) -> float | None:
    assert value is None or isinstance(value, int | float | Decimal), f"not a number: {value!r}"
    return None if value is None else float(value)


def assert_shows(chart: ShownChart, expected: float | None, source: str) -> None:
    shown = parse_shown_number(chart.big_number or "")
    if shown is None or expected is None:
        assert shown is None and expected is None, f"{chart.name}: shows {chart.big_number!r}, {source} {expected}"
        return
    value, half_digit = shown
    assert abs(value - expected) <= half_digit + 1e-9, f"{chart.name}: shows {chart.big_number!r}, {source} {expected}"


def check_big_number(chart: ShownChart, api: requests.Session, instance: Instance) -> None:
    from_api = chart_data_value(api, instance, chart.chart_id)
    assert_shows(chart, from_api, "the chart-data API says")
    if chart.name in BIG_NUMBER_SQL:
        from_sql = sql_value(BIG_NUMBER_SQL[chart.name])
        assert (from_api is None and from_sql is None) or (
            from_api is not None and from_sql is not None and math.isclose(from_api, from_sql, rel_tol=1e-9)), \
            f"{chart.name}: chart-data API {from_api}, SQL {from_sql}"
        assert_shows(chart, from_sql, "SQL says")


def register_people(regions: tuple[str, ...], tag: str) -> None:
    """Two households of two per region, through the real individuals import (approved, committed, published)."""
    rows = [HEADER]
    for region in regions:
        for n in range(2):
            code, surname = f"{region[:1]}{tag}{n}", f"Wekesa{tag}{n}"
            rows += [f"Amina,{surname},1980-01-0{n + 1},F,{code},1,HEAD,{region}",
                     f"Baraka,{surname},2012-02-0{n + 1},M,{code},0,SON,{region}"]
    (config.inbox() / f"people-{tag}.csv").write_text("\n".join(rows) + "\n")
    run_upload(INDIVIDUALS, file=f"people-{tag}.csv", options={"mode": "create"}, maker="maker", checker="checker",
               run_id=uuid.uuid4().hex)


def run_approved(workflow: Workflow, checker: str = "checker", **options: Any) -> dict[str, Any]:
    return run_request(workflow, options=options, maker="maker", checker=checker, run_id=uuid.uuid4().hex)


def pay_one_cycle(plan: str, tag: str) -> None:
    """A cycle billed, its payroll approved and reconciled from the provider's file: the first bill failed."""
    run_approved(CYCLE, "payment_checker", plan=plan, cycle="C1", period_start="2026-03-01", period_end="2026-03-31")
    payroll = run_approved(PAYROLL, "payment_checker", plan=plan, cycle="C1")["proposal"]["payroll"]
    answers = config.inbox() / f"{payroll}-answers-{tag}.csv"
    write_answers(payroll_dir() / f"{payroll}.csv", answers,
                  lambda number, row: unpaid() if number == 1 else paid(row, f"RC-{row['Code']}", "2026-03-31"))
    run_upload(RECONCILIATION, file=answers.name, options={"payroll": payroll, "on_invalid_rows": "reject_file"},
               maker="maker", checker="payment_checker", run_id=uuid.uuid4().hex)


@pytest.fixture(scope="module")
def marts_with_data(database: Instance) -> Instance:
    """Real rows in the marts the dashboards read: uploads and approvals, people in North and South, a plan with
    its beneficiaries, and one paid payment cycle.

    The workflows run in-process (as the bench does): the same steps and dbt as the DAGs, without the scheduler.
    """
    tag = uuid.uuid4().hex[:6].upper()
    selftest = f"selftest-{tag}.csv"
    (config.inbox() / selftest).write_text("code,label,amount\n" + "".join(
        f"{tag}-{i},row {i},{i}.50\n" for i in range(1, 5)))
    run_upload(SELFTEST, file=selftest, options={}, maker="maker", checker="checker", run_id=uuid.uuid4().hex)
    register_people(("North", "South"), tag)
    plan = f"E2E-{tag}"
    run_approved(DEFINE, plan=plan_document(plan))
    run_approved(ENROLMENT, plan=plan, target_status="ACTIVE", criteria={"all": [
        {"field": "household_code", "op": "contains", "value": tag}]})
    pay_one_cycle(plan, tag)
    return database


def test_manager_sees_every_dashboard_drawn_with_the_numbers_of_the_marts(
        marts_with_data, superset, superset_page, request: pytest.FixtureRequest) -> None:
    dashboards = dashboards_for_managers(superset)
    assert dashboards, "no published dashboard for managers"
    page = superset_page("manager")
    api = superset_api(superset, "manager")
    compared = []
    for dashboard in dashboards:
        open_dashboard(page, superset, dashboard)
        expected = charts_of(superset, dashboard["id"])
        shown = read_dashboard(page, expected)
        screenshot(page, f"{request.node.name}-{dashboard['slug'] or dashboard['id']}")
        assert set(shown) == set(expected), f"{dashboard['dashboard_title']}: charts not drawn: " \
            f"{sorted(name for chart_id, name in expected.items() if chart_id not in shown)}"
        failed = {chart.name: chart.error for chart in shown.values() if chart.error}
        assert not failed, f"{dashboard['dashboard_title']}: charts in error: {failed}"
        for chart in shown.values():
            if chart.viz_type in BIG_NUMBER_VIZ:
                check_big_number(chart, api, superset)
                compared.append(chart.name)
    assert set(BIG_NUMBER_SQL) <= set(compared), f"BIG_NUMBER_SQL names charts no dashboard shows: " \
        f"{sorted(set(BIG_NUMBER_SQL) - set(compared))}"


# -- Superset: row-level security by region ------------------------------------------------------------------------
def chart_data_responses(page: Page) -> dict[int, Response]:
    """The chart-data answers the page receives, by chart id (filled as the dashboard loads)."""
    answers: dict[int, Response] = {}

    def keep(response: Response) -> None:
        match = re.search(r"/api/v1/chart/data\?form_data=%7B%22slice_id%22%3A(\d+)", response.url)
        if match and response.request.method == "POST":
            answers[int(match.group(1))] = response

    page.on("response", keep)
    return answers


def regions_in(response: Response) -> set[str]:
    regions = set()
    for result in response.json()["result"]:
        for row in result["data"]:
            regions |= {str(value) for column, value in row.items() if column.lower() == "region"}
    return regions


def test_manager_north_sees_only_the_north(marts_with_data, superset, superset_page) -> None:
    """Row-level security as the manager of region North meets it: every region on the dashboard is North."""
    if "manager_north" not in superset_setup.SUPERSET_USERS:
        pytest.skip("the Superset user manager_north (row-level security: region North) is not provisioned yet: "
                    "add it to superset_setup.SUPERSET_USERS")
    assert sql_value("SELECT count(*) FROM marts.mart_beneficiaries WHERE region <> 'North'"), \
        "no beneficiary outside North: nothing for row-level security to hide"
    overview = [d for d in dashboards_for_managers(superset) if d["dashboard_title"] == "Programme overview"]
    assert len(overview) == 1, "manager_north exists but no (single) published dashboard \"Programme overview\""
    dashboard = overview[0]
    page = superset_page("manager_north")
    answers = chart_data_responses(page)
    open_dashboard(page, superset, dashboard)
    shown = read_dashboard(page, charts_of(superset, dashboard["id"]))
    assert not {chart.name: chart.error for chart in shown.values() if chart.error}

    # Pies and bars are drawn on a canvas: the regions a chart shows are the ones in the data the page received.
    assert set(answers) >= set(shown), f"charts drawn without a chart-data answer: {set(shown) - set(answers)}"
    regions = {chart.name: regions_in(answers[chart.chart_id]) for chart in shown.values()}
    regions = {name: found for name, found in regions.items() if found}
    assert regions, f"no chart on Programme overview shows a region: {sorted(c.name for c in shown.values())}"
    assert all(found == {"North"} for found in regions.values()), regions
