"""The registry API with the running Airflow: an asynchronous search runs as a `registry_api_search` DAG run,
started by the triggerer, and its answer reaches the partner's callback on the loopback interface, signed."""

from __future__ import annotations

import base64
import os
import time
import uuid

import httpx
import pytest

from benefitflow.core import db
from benefitflow.registry.individuals_import import WORKFLOW
from benefitflow.registry_api import signing
from benefitflow.workflows.direct import run_steps
from tests.conftest import CALLBACK_PORT_VARIABLE
from tests.e2e.approvals import approved
from tests.integration.callback_receiver import receiving
from tests.integration.dci_contract import assert_conforms
from tests.integration.test_registry_api import envelope, item, now, token

pytestmark = pytest.mark.e2e


def test_an_async_search_runs_as_a_dag_run_and_its_answer_reaches_the_callback(airflow, registry_api,
                                                                                 database) -> None:
    national_id = f"NI{uuid.uuid4().hex[:10].upper()}"
    path = database.inbox / f"async-{national_id}.csv"
    path.write_text(f"first_name,last_name,dob,sex,national_id\nMariama,Ba,1990-05-01,F,{national_id}\n")
    run_steps(WORKFLOW, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
              run_id=uuid.uuid4().hex)
    api = registry_api.registry_api_url
    bearer = token(api, registry_api, "callback-partner")
    with receiving(int(os.environ[CALLBACK_PORT_VARIABLE])) as receiver:
        ack = httpx.post(f"{api}/registry/search", headers={"Authorization": f"Bearer {bearer}"},
                         json=envelope(item("idtype-value", {"type": "UIN", "value": national_id}, "e2e-async")))
        assert ack.status_code == 200 and ack.json()["message"]["ack_status"] == "ACK", ack.text
        correlation_id = ack.json()["message"]["correlation_id"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not receiver.bodies("/dci/registry/on-search"):
            time.sleep(1)
    [delivered] = receiver.bodies("/dci/registry/on-search")
    assert_conforms(delivered, "on_search_callback")
    public = base64.b64encode(signing.raw_public_key(signing.private_key().public_key())).decode()
    signing.verify(delivered["signature"], delivered["header"], delivered["message"], public)
    assert delivered["message"]["correlation_id"] == correlation_id
    [answer] = delivered["message"]["search_response"]
    assert answer["data"]["reg_records"][0]["name"] == {"@type": "Name", "given_name": "Mariama", "surname": "Ba"}
    with db.transaction() as cur:
        cur.execute("SELECT answered_by_run FROM registry_api.transactions WHERE correlation_id = %s",
                    (correlation_id,))
        [(run_id,)] = cur.fetchall()
    assert airflow("admin").wait_for_run("registry_api_search", run_id) == "success"


def test_a_subscriber_is_notified_when_an_approved_import_is_published(airflow, registry_api, database) -> None:
    api = registry_api.registry_api_url
    bearer = token(api, registry_api, "callback-partner")
    region = f"Notify-{uuid.uuid4().hex[:6]}"
    subscribe = {"header": {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": now(),
                            "action": "subscribe", "sender_id": "tests", "total_count": 1},
                 "message": {"transaction_id": uuid.uuid4().hex[:20], "subscribe_request": [{
                     "reference_id": "e2e-sub", "timestamp": now(), "subscribe_criteria": {
                         "reg_event_type": "REGISTER", "notify_record_type": "Member", "filter_type": "predicate",
                         "filter": [{"seq_num": 1, "expression1": {"attribute_name": "last_name", "operator": "eq",
                                                                   "attribute_value": region}}]}}]}}
    file_name = f"{region}.csv"
    (database.inbox / file_name).write_text(f"first_name,last_name,dob,sex\nFatou,{region},1991-04-04,F\n"
                                            f"Ousmane,{region},1989-09-09,M\n")
    with receiving(int(os.environ[CALLBACK_PORT_VARIABLE])) as receiver:
        ack = httpx.post(f"{api}/registry/subscribe", headers={"Authorization": f"Bearer {bearer}"}, json=subscribe)
        assert ack.json()["message"]["ack_status"] == "ACK", ack.text
        _wait_for(lambda: receiver.bodies("/dci/registry/on-subscribe"))
        code = receiver.bodies("/dci/registry/on-subscribe")[0]["message"]["subscribe_response"][0][
            "subscriptions"][0]["code"]
        approved(airflow("maker"), airflow("checker"), "individuals_import", {"file": file_name, "mode": "create"},
                 ["individuals to create:** 2"])
        _wait_for(lambda: [b for b in receiver.bodies("/dci/registry/notify")
                           if b["message"]["notify_event"][0]["reference_id"] == code])
    [notified] = [b for b in receiver.bodies("/dci/registry/notify")
                  if b["message"]["notify_event"][0]["reference_id"] == code]
    assert_conforms(notified, "notify")
    records = notified["message"]["notify_event"][0]["data"]["reg_records"]
    assert sorted(r["name"]["given_name"] for r in records) == ["Fatou", "Ousmane"]


def _wait_for(found, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not found():
        time.sleep(1)
    assert found(), "nothing arrived at the callback in time"


def test_managers_see_partner_requests_on_the_operations_dashboard(registry_api, superset) -> None:
    from tests.e2e.test_superset import chart_rows, session_for

    api = registry_api.registry_api_url
    bearer = token(api, registry_api, "payments-system")
    for _ in range(3):
        httpx.post(f"{api}/registry/sync/search", headers={"Authorization": f"Bearer {bearer}"},
                   json=envelope(item("idtype-value", {"type": "UIN", "value": "NOBODY-0001"})))
    rows = {row["client"]: row for row in chart_rows(superset, session_for(superset, "manager"),
                                                      "Registry API requests by client")}
    assert rows["payments-system"]["requests"] >= 4  # three searches and a token
    assert rows["payments-system"]["p95_milliseconds"] > 0
