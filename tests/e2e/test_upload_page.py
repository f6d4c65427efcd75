"""Makers hand in files from the browser (the Upload page) and from scripts (its REST twin), on the running services."""

from __future__ import annotations

import csv
import http.client
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests
from playwright.sync_api import expect

from benefitflow.core import db
from benefitflow_dev.instance import Instance
from tests.e2e.browser import OpenPage, open_pending_request, screenshot, sign_in_to_airflow
from tests.e2e.people import register_region

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.browser"]

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "openimis-individuals-sample.csv"
SELFTEST = "platform_selftest"
LIMIT = 200 * 1000 * 1000  # BENEFITFLOW_WEB_UPLOAD_MAX_BYTES's default: the e2e services keep it


def selftest_csv(rows: int = 2) -> bytes:
    tag = uuid.uuid4().hex[:8].upper()
    return ("code,label,amount\n" + "".join(f"U{tag}-{n},row {n},{n}.50\n" for n in range(1, rows + 1))).encode()


def openimis_sample() -> bytes:
    """The openIMIS sample, its households renamed so that it registers new ones whatever else this session did."""
    tag = uuid.uuid4().hex[:5].upper()
    lines = SAMPLE.read_text().splitlines()
    column = lines[0].split(",").index("group_code")
    renamed = [lines[0]] + [",".join(f"{value}{tag}" if index == column else value
                                     for index, value in enumerate(line.split(","))) for line in lines[1:]]
    return ("\n".join(renamed) + "\n").encode()


def hand_in(instance: Instance, client, dag_id: str, name: str, content: bytes,
            options: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{instance.airflow_url}/benefitflow/api/uploads/{dag_id}", headers=client._headers(),
                         files={"file": (name, content, "text/csv")}, data=options or {}, timeout=120)


def audited(dag_id: str, actor: str) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute("SELECT outcome, details->>'reason', details->>'dag_run_id' FROM ledger.audit_events"
                    " WHERE action = 'upload.hand_in' AND object_id = %s AND actor = %s ORDER BY event_id",
                    (dag_id, actor))
        return cur.fetchall()


@pytest.fixture
def finish_runs(airflow) -> Iterator[list[tuple[str, str]]]:
    """Runs a test started: rejected by the checker at the end, so none is left waiting."""
    started: list[tuple[str, str]] = []
    yield started
    checker = airflow("checker")
    for dag_id, run_id in started:
        checker.wait_until_parked(dag_id, run_id)
        checker.answer(dag_id, run_id, "Reject")


# -- scripts: POST multipart ---------------------------------------------------------------------------
def test_a_maker_hands_in_a_file_by_script_and_the_run_is_theirs(airflow, airflow_services, finish_runs) -> None:
    maker = airflow("maker")
    response = hand_in(airflow_services, maker, SELFTEST, "../../etc/my file.csv", selftest_csv(),
                       {"on_invalid_rows": "reject_file"})
    assert response.status_code == 201, response.text
    started = response.json()
    finish_runs.append((SELFTEST, started["dag_run_id"]))
    # The platform chose the name: the client's path is not a path, only a hint in the name.
    name = started["file"]
    assert name.startswith(f"web-{SELFTEST}-") and name.endswith("-my_file.csv") and "/" not in name
    assert (airflow_services.inbox / name).is_file()
    assert started["client_file_name"].endswith("my file.csv")
    run = maker.request("GET", f"/dags/{SELFTEST}/dagRuns/{started['dag_run_id']}").json()
    assert run["triggering_user_name"] == "maker" and run["conf"]["file"] == name
    maker.wait_until_parked(SELFTEST, started["dag_run_id"])
    with db.transaction() as cur:
        cur.execute("SELECT uploaded_by, sha256, file_name FROM intake.uploads WHERE run_id = %s",
                    (started["dag_run_id"],))
        assert cur.fetchall() == [("maker", started["sha256"], name)]
    assert ("STARTED", None, started["dag_run_id"]) in audited(SELFTEST, "maker")

    # The same file again, once its first upload is taken in: refused at once, nothing started, nothing kept;
    # and the first file, taken in (intake keeps its own copy), is no longer left lying in the inbox.
    again = hand_in(airflow_services, maker, SELFTEST, "again.csv", (airflow_services.inbox / name).read_bytes())
    assert again.status_code == 409 and "already uploaded" in again.json()["detail"]
    assert not list(airflow_services.inbox.glob(f"web-{SELFTEST}-*-again.csv"))
    assert not (airflow_services.inbox / name).exists()


def test_only_its_maker_starts_a_workflow_on_a_handed_in_file(airflow, airflow_services, finish_runs) -> None:
    """Every maker hands in files; another maker who reads the file's name in a run's parameters cannot take it in
    as theirs."""
    started = hand_in(airflow_services, airflow("maker"), SELFTEST, "mine.csv", selftest_csv()).json()
    finish_runs.append((SELFTEST, started["dag_run_id"]))
    other = airflow("maker2")
    response = other.trigger(SELFTEST, {"file": started["file"]})
    assert response.status_code == 200, response.text
    stolen = response.json()["dag_run_id"]
    assert other.wait_for_run(SELFTEST, stolen) == "failed"
    own = hand_in(airflow_services, other, SELFTEST, "theirs.csv", selftest_csv())  # after: it sweeps the inbox
    assert own.status_code == 201, own.text
    finish_runs.append((SELFTEST, own.json()["dag_run_id"]))
    with db.transaction() as cur:
        cur.execute("SELECT details->>'reason' FROM ledger.audit_events WHERE action = 'upload.refused'"
                    " AND details->>'run_id' = %s", (stolen,))
        (reason,) = cur.fetchone()
    assert "handed in on the Upload page by someone else" in reason


def test_only_a_bearer_token_is_taken_besides_the_pages_own_session(airflow_services) -> None:
    response = requests.post(f"{airflow_services.airflow_url}/benefitflow/api/uploads/{SELFTEST}",
                             auth=("maker", airflow_services.user_password("maker")),
                             files={"file": ("x.csv", selftest_csv(), "text/csv")}, timeout=60)
    assert response.status_code in (401, 403)


@pytest.mark.parametrize(("name", "content", "status", "message"), [
    ("empty.csv", b"", 400, "the file is empty"),
    ("picture.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), 415, "not CSV text"),
    ("latin1.csv", "code,label,amount\nA,caf\xe9,1\n".encode("latin-1"), 415, "not UTF-8"),
    ("notes.csv", b"just some words\nand more words\n", 415, "no comma"),
])
def test_what_is_not_a_csv_file_is_refused_at_once(airflow, airflow_services, name: str, content: bytes,
                                                    status: int, message: str) -> None:
    response = hand_in(airflow_services, airflow("maker2"), SELFTEST, name, content)
    assert response.status_code == status and message in response.json()["detail"]
    assert not list(airflow_services.inbox.glob(f"web-{SELFTEST}-*-{Path(name).stem}.csv"))
    assert any(outcome == "REFUSED" and message in reason for outcome, reason, _ in audited(SELFTEST, "maker2"))


def test_a_checker_may_not_hand_in_a_file(airflow, airflow_services) -> None:
    response = hand_in(airflow_services, airflow("checker"), SELFTEST, "bait.csv", selftest_csv())
    assert response.status_code == 403 and "may not start" in response.json()["detail"]
    assert not list(airflow_services.inbox.glob(f"web-{SELFTEST}-*-bait.csv"))


def test_a_manager_has_no_way_in(airflow_services) -> None:
    """Managers read Superset: they have no Airflow account, so no page and no upload."""
    token = requests.post(f"{airflow_services.airflow_url}/auth/token", timeout=30,
                          json={"username": "manager", "password": airflow_services.user_password("manager")})
    assert token.status_code in (401, 403)
    assert requests.get(f"{airflow_services.airflow_url}/benefitflow/upload", timeout=30).status_code == 401


def test_an_unknown_option_or_workflow_is_refused(airflow, airflow_services) -> None:
    maker = airflow("maker")
    wrong = hand_in(airflow_services, maker, SELFTEST, "options.csv", selftest_csv(), {"plan": "X"})
    assert wrong.status_code == 400 and "plan: not an option" in wrong.json()["detail"]
    assert hand_in(airflow_services, maker, "payroll", "x.csv", selftest_csv()).status_code == 404  # a form workflow


def test_a_file_over_the_limit_is_refused_before_and_while_it_is_read(airflow, airflow_services) -> None:
    token = airflow("maker")._headers()["Authorization"]
    address = urlsplit(airflow_services.airflow_url)
    # Declared too large: refused before a byte of the body is read.
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.putrequest("POST", f"/benefitflow/api/uploads/{SELFTEST}")
    for header, value in (("Authorization", token), ("Content-Type", "multipart/form-data; boundary=b"),
                          ("Content-Length", str(LIMIT * 2))):
        connection.putheader(header, value)
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and b"BENEFITFLOW_WEB_UPLOAD_MAX_BYTES" in answer.read()
    connection.close()

    # Sent without a length (chunked): refused once the limit is passed, and what was written is removed.
    def body() -> Iterator[bytes]:
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.csv\"\r\n\r\ncode,label,amount\n"
        row = b"A,long label " + b"x" * 1000 + b",1.00\n"
        block = row * 1000
        for _ in range(LIMIT // len(block) + 2):
            yield block
        yield b"\r\n--b--\r\n"

    try:
        response = requests.post(f"{airflow_services.airflow_url}/benefitflow/api/uploads/{SELFTEST}", data=body(),
                                 headers={"Authorization": token, "Content-Type": "multipart/form-data; boundary=b"},
                                 timeout=300)
        assert response.status_code == 413, response.text
    except requests.ConnectionError:
        pass  # the server answered and closed while the rest was still being sent: the audit trail says why
    assert any(outcome == "REFUSED" and "larger than" in reason for outcome, reason, _ in audited(SELFTEST, "maker"))
    assert not list(airflow_services.inbox.glob(f"web-{SELFTEST}-*-huge.csv"))


# -- the page, in a browser ------------------------------------------------------------------------------
def test_a_maker_uploads_the_openimis_sample_on_the_page(airflow, airflow_services, pages: OpenPage,
                                                         tmp_path: Path, finish_runs) -> None:
    page = pages("maker")
    sign_in_to_airflow(page, airflow_services, "maker")
    page.get_by_role("link", name="Upload").click()  # Airflow's navigation frames the page
    upload = page.frame_locator("iframe")
    expect(upload.locator("h1")).to_have_text("Upload a file")
    screenshot(page, "upload_page_in_airflow")

    sample = tmp_path / "openimis-individuals-sample.csv"
    sample.write_bytes(openimis_sample())
    form = upload.locator("details#individuals_import")
    expect(form).to_have_attribute("open", "")  # the registry's import comes first, open
    form.locator("input[name=file]").set_input_files(str(sample))
    form.locator("select[name=mode]").select_option("create")
    form.locator("button[type=submit]").click()
    expect(upload.locator("h1")).to_have_text("Upload received")
    screenshot(page, "upload_page_received")
    run_id = upload.locator("p.started code").nth(2).inner_text()
    finish_runs.append(("individuals_import", run_id))
    link = upload.locator("#run-link")
    assert unquote(link.get_attribute("href") or "").endswith(f"/dags/individuals_import/runs/{run_id}")
    link.click()  # the whole window goes to the run, out of the frame
    page.wait_for_url(re.compile(r".*/dags/individuals_import/runs/.+"), wait_until="commit")
    airflow("maker").wait_until_parked("individuals_import", run_id)

    # The checker reads the request grouped by meaning, with the proposal's first rows and no names in them.
    checker_page = pages("checker")
    sign_in_to_airflow(checker_page, airflow_services, "checker")
    open_pending_request(checker_page, airflow_services, run_id)
    for heading in ("What", "How many and how much", "The data"):
        expect(checker_page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(checker_page.get_by_text("The first 5 of 100 proposed rows")).to_be_visible()
    expect(checker_page.get_by_role("table").get_by_role("columnheader", name="action")).to_be_visible()
    expect(checker_page.get_by_text("individuals to create: 100")).to_be_visible()
    expect(checker_page.get_by_text("Michael")).to_have_count(0)  # the sample's first name: personal, left out
    screenshot(checker_page, "approval_request_individuals_import")

    # The whole proposal, personal data included, goes to the checker (and the maker), not to another maker.
    with db.transaction() as cur:
        cur.execute("SELECT upload_id FROM intake.uploads WHERE run_id = %s", (run_id,))
        (upload_id,) = cur.fetchone()
    path = f"{airflow_services.airflow_url}/benefitflow/proposals/individuals_import/{upload_id}.csv"
    full = requests.get(path, headers=airflow("checker")._headers(), timeout=60)
    assert full.status_code == 200 and full.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(full.text)))
    assert len(rows) == 100 and rows[0]["first_name"] == "Michael" and rows[0]["row_number"] == "1"
    assert requests.get(path, headers=airflow("maker2")._headers(), timeout=60).status_code == 403
    with db.transaction() as cur:
        cur.execute("SELECT actor, outcome FROM ledger.audit_events WHERE action = 'proposal.download'"
                    " AND object_id = %s ORDER BY event_id", (str(upload_id),))
        assert cur.fetchall() == [("checker", "DOWNLOADED"), ("maker2", "REFUSED")]

    # The same file again, on the page: refused with the reason, nothing started.
    page.goto(f"{airflow_services.airflow_url}/benefitflow/upload")
    form = page.locator("details#individuals_import")
    form.locator("input[name=file]").set_input_files(str(sample))
    form.locator("button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("Upload refused")
    expect(page.locator("p.refused")).to_contain_text("already uploaded")
    screenshot(page, "upload_page_refused_same_file")

    # Not CSV: refused on the page with its message.
    picture = tmp_path / "photo.csv"
    picture.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(500))
    page.goto(f"{airflow_services.airflow_url}/benefitflow/upload")
    page.locator("details#platform_selftest summary").click()
    page.locator("details#platform_selftest input[name=file]").set_input_files(str(picture))
    page.locator("details#platform_selftest button[type=submit]").click()
    expect(page.locator("p.refused")).to_contain_text("not CSV text")

    # Over the limit: refused on the page before a byte is sent (a sparse file: its size, no content).
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:
        handle.truncate(LIMIT + 1)
    page.goto(f"{airflow_services.airflow_url}/benefitflow/upload")
    form = page.locator("details#individuals_import")
    form.locator("input[name=file]").set_input_files(str(huge))
    form.locator("button[type=submit]").click()
    expect(form.locator("p.refused")).to_contain_text(f"larger than {LIMIT:,} bytes")
    expect(page.locator("h1")).to_have_text("Upload a file")  # still the page: nothing was sent
    screenshot(page, "upload_page_refused_too_large")


def test_grievances_handed_in_and_read_by_their_checker(airflow, airflow_services, database, pages: OpenPage,
                                                       finish_runs) -> None:
    region = register_region(database)
    with db.transaction() as cur:
        cur.execute("SELECT individual_id::text FROM registry.individuals WHERE region = %s ORDER BY dob LIMIT 2",
                    (region,))
        people = [individual_id for (individual_id,) in cur.fetchall()]
    tickets = "title,category,channel,individual_id,priority,description\n" + "".join(
        f"Payment missed {n},PAYMENT,SMS,{person},HIGH,The March payment did not arrive\n"
        for n, person in enumerate(people, 1))
    response = hand_in(airflow_services, airflow("maker"), "grievances_import", "tickets.csv", tickets.encode(),
                       {"on_invalid_rows": "reject_file"})
    assert response.status_code == 201, response.text
    run_id = response.json()["dag_run_id"]
    finish_runs.append(("grievances_import", run_id))
    airflow("maker").wait_until_parked("grievances_import", run_id)
    page = pages("checker")
    sign_in_to_airflow(page, airflow_services, "checker")
    open_pending_request(page, airflow_services, run_id)
    expect(page.get_by_role("heading", name="The data", exact=True)).to_be_visible()
    expect(page.get_by_text("The March payment did not arrive")).to_have_count(0)  # what people wrote: not shown
    screenshot(page, "approval_request_grievances_import")


def test_a_checker_does_not_get_the_page(airflow_services, pages: OpenPage) -> None:
    page = pages("checker")
    sign_in_to_airflow(page, airflow_services, "checker")
    response = page.goto(f"{airflow_services.airflow_url}/benefitflow/upload")
    assert response is not None and response.status == 403
    expect(page.locator("p.refused")).to_contain_text("for makers")
    screenshot(page, "upload_page_refused_to_a_checker")


def test_a_form_posted_from_another_site_is_refused(airflow, airflow_services) -> None:
    """With the session cookie and no token, a post must come from the page itself (no cross-site forms)."""
    token = airflow("maker")._headers()["Authorization"].removeprefix("Bearer ")
    response = requests.post(f"{airflow_services.airflow_url}/benefitflow/upload/{SELFTEST}",
                             cookies={"_token": token}, headers={"Origin": "https://elsewhere.example"},
                             files={"file": ("x.csv", io.BytesIO(selftest_csv()), "text/csv")}, timeout=60)
    assert response.status_code == 403 and "another site" in response.text
