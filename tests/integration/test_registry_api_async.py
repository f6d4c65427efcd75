"""Asynchronous searches and transaction status: acknowledged by the service, answered and delivered by the
registry_api_search DAG's steps (run here in-process, on the real database) to a callback on the loopback."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid

import httpx
import pytest

from benefitflow.core import db
from benefitflow.registry_api import async_search, signing
from tests.conftest import CALLBACK_PORT_VARIABLE
from tests.integration.callback_receiver import receiving
from tests.integration.dci_contract import assert_conforms
from tests.integration.test_registry_api import api, envelope, family, item, now, token  # noqa: F401 - fixtures

CALLBACK_PORT = int(os.environ[CALLBACK_PORT_VARIABLE])


@pytest.fixture(scope="module")
def partner(api, database) -> str:  # noqa: F811 - api is the imported fixture
    return token(api, database, "callback-partner")


def post(api: str, path: str, bearer: str, body: dict) -> httpx.Response:  # noqa: F811
    return httpx.post(f"{api}{path}", json=body, headers={"Authorization": f"Bearer {bearer}"}, timeout=30)


def status_request(transaction_id: str, attribute_type: str, value, **header) -> dict:
    return {"header": {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": now(),
                       "action": "txn-status", "sender_id": "tests", "total_count": 1, **header},
            "message": {"transaction_id": uuid.uuid4().hex[:20], "txnstatus_request": {
                "reference_id": "status-1", "txn_type": "search", "attribute_type": attribute_type,
                "attribute_value": value}}}


def public_key() -> str:
    return base64.b64encode(signing.raw_public_key(signing.private_key().public_key())).decode()


def test_an_async_search_is_acknowledged_answered_and_delivered_signed_to_the_registered_callback(
        api, partner, family) -> None:  # noqa: F811
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Halima"]}, "async-1"),
                    sender_uri="http://169.254.169.254/steal")  # a sender_uri is never called
    ack = post(api, "/registry/search", partner, body)
    assert ack.status_code == 200, ack.text
    assert_conforms(ack.json(), "ack")
    assert ack.json()["message"]["ack_status"] == "ACK"
    correlation_id = ack.json()["message"]["correlation_id"]
    with receiving(CALLBACK_PORT) as receiver:
        assert async_search.answer_waiting("test-run") >= 1
        assert async_search.deliver_answers("test-run") >= 1
    [delivered] = [b for b in receiver.bodies("/dci/registry/on-search")
                   if b["message"]["correlation_id"] == correlation_id]
    assert_conforms(delivered, "on_search_callback")
    signing.verify(delivered["signature"], delivered["header"], delivered["message"], public_key())
    [answer] = delivered["message"]["search_response"]
    assert answer["status"] == "succ" and answer["reference_id"] == "async-1"
    [person] = answer["data"]["reg_records"]
    assert person["name"]["given_name"] == "Halima"
    assert [list(a) for a in person["additional_attributes"]] == [["household_size"]]  # its scope: no income
    with db.transaction() as cur:
        cur.execute("SELECT status, response, delivered_at IS NOT NULL, answered_by_run FROM registry_api.transactions"
                    " WHERE correlation_id = %s", (correlation_id,))
        assert cur.fetchone() == ("succ", None, True, "test-run")  # the answer, naming people, is dropped once delivered
        cur.execute("SELECT outcome FROM ledger.audit_events WHERE action IN ('registry_api.answer',"
                    " 'registry_api.async_answer', 'registry_api.delivery') AND details ->> 'correlation_id' = %s"
                    " ORDER BY event_id", (correlation_id,))
        assert [row[0] for row in cur.fetchall()] == ["ACKNOWLEDGED", "ANSWERED", "DELIVERED"]


def test_a_failed_delivery_fails_the_step_and_keeps_the_answer_for_the_retry(api, partner, family) -> None:  # noqa: F811
    ack = post(api, "/registry/search", partner, envelope(item("idtype-value", {"type": "UIN",
                                                                                 "value": family["Omar"]})))
    correlation_id = ack.json()["message"]["correlation_id"]
    async_search.answer_waiting("test-run")
    with receiving(CALLBACK_PORT) as receiver:
        receiver.answer_status = 503
        with pytest.raises(async_search.DeliveryFailed, match="not delivered"):
            async_search.deliver_answers("test-run")
        receiver.answer_status = 200
        async_search.deliver_answers("test-run-retry")
    attempts = [b for b in receiver.bodies("/dci/registry/on-search") if b["message"]["correlation_id"] == correlation_id]
    assert len(attempts) == 2 and attempts[0]["message"] == attempts[1]["message"]
    with db.transaction() as cur:
        cur.execute("SELECT delivery_attempts, delivered_at IS NOT NULL, last_delivery_error FROM"
                    " registry_api.transactions WHERE correlation_id = %s", (correlation_id,))
        assert cur.fetchone() == (2, True, None)


def test_without_a_reachable_callback_nothing_is_lost(api, partner, family) -> None:  # noqa: F811
    ack = post(api, "/registry/search", partner, envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]})))
    correlation_id = ack.json()["message"]["correlation_id"]
    async_search.answer_waiting("test-run")
    with pytest.raises(async_search.DeliveryFailed):  # nobody listens on the callback's port
        async_search.deliver_answers("test-run")
    with db.transaction() as cur:
        cur.execute("SELECT response IS NOT NULL, last_delivery_error LIKE 'ConnectError%%' FROM"
                    " registry_api.transactions WHERE correlation_id = %s", (correlation_id,))
        assert cur.fetchone() == (True, True)
    with receiving(CALLBACK_PORT):
        async_search.deliver_answers("test-run-retry")


def test_the_trigger_signals_waiting_messages_once_until_they_go_stale(api, partner, family) -> None:  # noqa: F811
    ack = post(api, "/registry/search", partner, envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]})))
    correlation_id = ack.json()["message"]["correlation_id"]

    async def first_event() -> dict:
        events = async_search.WaitingMessages(poll_seconds=0.1).run()
        try:
            return (await asyncio.wait_for(anext(events), timeout=10)).payload
        finally:
            await events.aclose()

    assert correlation_id in asyncio.run(first_event())["correlation_ids"]
    assert correlation_id not in async_search.signal_waiting()  # signalled once: one run, not one per poll
    with receiving(CALLBACK_PORT):
        async_search.answer_waiting("test-run")
        async_search.deliver_answers("test-run")


def test_status_of_a_search_by_transaction_correlation_or_reference_ids(api, partner, family) -> None:  # noqa: F811
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}, "ref-a"),
                    item("idtype-value", {"type": "UIN", "value": family["Awa"]}, "ref-b", pagination={"page_size": 0}))
    answer = post(api, "/registry/sync/search", partner, body).json()
    correlation_id = answer["message"]["correlation_id"]
    for attribute_type, value in (("transaction_id", body["message"]["transaction_id"]),
                                  ("correlation_id", correlation_id), ("reference_id_list", ["ref-b"])):
        response = post(api, "/registry/sync/txn/status", partner, status_request("s", attribute_type, value))
        assert response.status_code == 200, response.text
        assert_conforms(response.json(), "txn_status_response")
        status = response.json()["message"]["txnstatus_response"]["txn_status"]
        assert status["correlation_id"] == correlation_id and status["status"] == "succ"
        assert [(i["reference_id"], i["status"]) for i in status["search_response"]] == [("ref-a", "succ"),
                                                                                         ("ref-b", "rjct")]
        assert "data" not in status["search_response"][0]  # statuses, never records


def test_another_clients_transaction_is_not_found(api, database, partner, family) -> None:  # noqa: F811
    ministry = token(api, database, "ministry-mis")
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}))
    post(api, "/registry/sync/search", ministry, body)
    response = post(api, "/registry/sync/txn/status", partner,
                    status_request("s", "transaction_id", body["message"]["transaction_id"]))
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "err.request.not_found"


def test_an_async_status_request_is_delivered_to_txn_on_status(api, partner, family) -> None:  # noqa: F811
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}))
    post(api, "/registry/sync/search", partner, body)
    ack = post(api, "/registry/txn/status", partner, status_request("s", "transaction_id",
                                                                   body["message"]["transaction_id"]))
    assert ack.json()["message"]["ack_status"] == "ACK"
    with receiving(CALLBACK_PORT) as receiver:
        async_search.deliver_answers("test-run")
    [delivered] = [b for b in receiver.bodies("/dci/registry/txn/on-status")
                   if b["message"]["correlation_id"] == ack.json()["message"]["correlation_id"]]
    assert_conforms(delivered, "on_status_callback")
    assert delivered["message"]["txnstatus_response"]["txn_status"]["status"] == "succ"


def test_a_client_without_a_registered_callback_cannot_search_asynchronously(api, database, family) -> None:  # noqa: F811
    ministry = token(api, database, "ministry-mis")
    response = post(api, "/registry/search", ministry, envelope(item("idtype-value", {"type": "UIN",
                                                                                      "value": family["Awa"]})))
    assert response.status_code == 403 and "callback" in response.text


def test_a_repeated_message_id_is_refused(api, partner, family) -> None:  # noqa: F811
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}))
    assert post(api, "/registry/search", partner, body).status_code == 200
    again = post(api, "/registry/search", partner, body)
    assert again.status_code == 400 and "sent before" in again.text
    with receiving(CALLBACK_PORT):
        async_search.answer_waiting("test-run")
        async_search.deliver_answers("test-run")


def subscribe_request(region: str, **criteria) -> dict:
    return {"header": {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": now(), "action": "subscribe",
                       "sender_id": "tests", "total_count": 1},
            "message": {"transaction_id": uuid.uuid4().hex[:20], "subscribe_request": [{
                "reference_id": "sub-1", "timestamp": now(), "subscribe_criteria": {
                    "reg_event_type": "REGISTER", "notify_record_type": "Member", "filter_type": "predicate",
                    "filter": [{"seq_num": 1, "expression1": {"attribute_name": "dob", "operator": "ge",
                                                               "attribute_value": "1900-01-01"}}], **criteria}}]}}


def import_people(database, region: str, names: list[str]) -> None:
    from benefitflow.registry.individuals_import import WORKFLOW
    from benefitflow.workflows.direct import run_steps

    path = database.inbox / f"sub-{uuid.uuid4().hex[:8]}.csv"
    path.write_text("first_name,last_name,dob,sex,region\n" + "".join(f"{n},Diallo,1985-02-03,F,{region}\n"
                                                                       for n in names))
    run_steps(WORKFLOW, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
              run_id=uuid.uuid4().hex)


def test_a_subscriber_is_notified_of_exactly_the_new_people_its_filter_selects(api, partner, database) -> None:  # noqa: F811
    from benefitflow.registry_api import subscriptions

    region, other = f"Sub-{uuid.uuid4().hex[:6]}", f"Other-{uuid.uuid4().hex[:6]}"
    subscriptions.notify_changes("before")  # what earlier tests changed is notified to their subscriptions, if any
    body = subscribe_request(region, filter=[{"seq_num": 1, "expression1": {
        "attribute_name": "first_name", "operator": "in", "attribute_value": ["Aminata", "Binta"]}}])
    ack = post(api, "/registry/subscribe", partner, body)
    assert ack.status_code == 200 and ack.json()["message"]["ack_status"] == "ACK", ack.text
    with receiving(CALLBACK_PORT) as receiver:
        async_search.deliver_answers("test-run")
        [on_subscribe] = receiver.bodies("/dci/registry/on-subscribe")
        [answer] = on_subscribe["message"]["subscribe_response"]
        assert answer["status"] == "succ"
        code = answer["subscriptions"][0]["code"]
        import_people(database, region, ["Aminata", "Coumba"])
        import_people(database, other, ["Binta"])
        assert subscriptions.notify_changes("test-run") >= 1
        async_search.deliver_answers("test-run")
        notified = [b for b in receiver.bodies("/dci/registry/notify")
                    if b["message"]["notify_event"][0]["reference_id"] == code]
        assert len(notified) == 1
        assert_conforms(notified[0], "notify")
        signing.verify(notified[0]["signature"], notified[0]["header"], notified[0]["message"], public_key())
        [event] = notified[0]["message"]["notify_event"]
        assert event["data"]["reg_event_type"] == "REGISTER"
        people = sorted(r["name"]["given_name"] for r in event["data"]["reg_records"])
        assert people == ["Aminata", "Binta"]  # the filter's, nobody else; names and dob only (its scope)
        assert all(set(r) <= {"@type", "@id", "identifier", "name", "birth_date", "registration_date",
                              "last_updated"} for r in event["data"]["reg_records"])
        assert subscriptions.notify_changes("again") == 0  # nothing new since: nothing notified twice

        unsubscribe = {"header": {**body["header"], "message_id": uuid.uuid4().hex, "action": "unsubscribe"},
                       "message": {"transaction_id": "u-1", "timestamp": now(), "subscription_codes": [code]}}
        assert post(api, "/registry/unsubscribe", partner, unsubscribe).json()["message"]["ack_status"] == "ACK"
        async_search.deliver_answers("test-run")
        [on_unsubscribe] = receiver.bodies("/dci/registry/on-unsubscribe")
        assert on_unsubscribe["message"]["subscription_status"] == [{"code": code, "status": "unsubscribe"}]
        import_people(database, region, ["Aminata"])
        subscriptions.notify_changes("after")
        async_search.deliver_answers("test-run")
        assert len([b for b in receiver.bodies("/dci/registry/notify")
                    if b["message"]["notify_event"][0]["reference_id"] == code]) == 1


def test_a_subscription_outside_the_clients_scope_is_refused(api, partner) -> None:  # noqa: F811
    body = subscribe_request("x", filter=[{"seq_num": 1, "expression1": {
        "attribute_name": "income", "operator": "lt", "attribute_value": "10"}}])
    response = post(api, "/registry/subscribe", partner, body)
    assert response.status_code == 403 and "income" in response.text


def update_people(database, header: str, rows: list[str]) -> None:
    from benefitflow.registry.individuals_import import WORKFLOW
    from benefitflow.workflows.direct import run_steps

    path = database.inbox / f"upd-{uuid.uuid4().hex[:8]}.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    run_steps(WORKFLOW, file=path.name, options={"mode": "update"}, maker="maker", checker="checker",
              run_id=uuid.uuid4().hex)


def subscribed(api, partner, receiver, event: str, last_name: str) -> str:  # noqa: F811
    body = subscribe_request("x", reg_event_type=event, filter=[{"seq_num": 1, "expression1": {
        "attribute_name": "last_name", "operator": "eq", "attribute_value": last_name}}])
    assert post(api, "/registry/subscribe", partner, body).status_code == 200
    async_search.deliver_answers("test-run")
    [answer] = [b for b in receiver.bodies("/dci/registry/on-subscribe")
                if b["message"]["transaction_id"] == body["message"]["transaction_id"]]
    return answer["message"]["subscribe_response"][0]["subscriptions"][0]["code"]


def test_events_come_from_what_was_committed_and_what_the_client_may_read(api, partner, database) -> None:  # noqa: F811
    from benefitflow.registry_api import subscriptions

    family_name = f"Kane{uuid.uuid4().hex[:6]}"
    subscriptions.notify_changes("before")
    with receiving(CALLBACK_PORT) as receiver:
        registered = subscribed(api, partner, receiver, "REGISTER", family_name)
        updated = subscribed(api, partner, receiver, "UPDATE", family_name)
        path = database.inbox / f"{family_name}.csv"
        path.write_text(f"first_name,last_name,dob,sex,income\nAdama,{family_name},1980-01-01,M,10\n")
        from benefitflow.registry.individuals_import import WORKFLOW
        from benefitflow.workflows.direct import run_steps
        run_steps(WORKFLOW, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
                  run_id=uuid.uuid4().hex)
        with db.transaction() as cur:
            cur.execute("SELECT individual_id FROM registry.individuals WHERE last_name = %s", (family_name,))
            [(person,)] = cur.fetchall()
        update_people(database, "id,income", [f"{person},99"])  # a field this client may not read
        subscriptions.notify_changes("first")  # registered, then changed, before any notification
        async_search.deliver_answers("first")

        def events(code: str) -> list[str]:
            return [e["data"]["reg_event_type"] for b in receiver.bodies("/dci/registry/notify")
                    for e in b["message"]["notify_event"] if e["reference_id"] == code]

        assert events(registered) == ["REGISTER"]  # from the commits, not from the latest version
        assert events(updated) == []  # income changed: nothing this client can see
        update_people(database, "id,first_name", [f"{person},Adam"])
        subscriptions.notify_changes("second")
        async_search.deliver_answers("second")
        assert events(updated) == ["UPDATE"] and events(registered) == ["REGISTER"]
