"""The registry API (DCI Social Registry 1.0.0) against the real service and database: tokens, the three query
types, batches, pagination, scopes, malformed envelopes, signatures, limits and the audit trail."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg2.errors
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from benefitflow.core import db
from benefitflow.registry.individuals_import import WORKFLOW
from benefitflow.registry_api import signing
from benefitflow.workflows.direct import run_steps
from tests.conftest import PARTNER_KEY_VARIABLE
from tests.integration.dci_contract import assert_conforms

HEADER = "first_name,last_name,dob,sex,national_id,group_code,recipient_info,individual_role,region,disability,income"
PARTNER_KEY = serialization.load_pem_private_key(os.environ[PARTNER_KEY_VARIABLE].encode(), password=None)


@pytest.fixture(scope="module")
def api(registry_api) -> str:
    """The service as make up starts it, with the shipped clients and the tests' own (tests/conftest.py)."""
    return registry_api.registry_api_url


@pytest.fixture(scope="module")
def family(database) -> dict[str, str]:
    """A household of three in a region of its own, imported through the workflow."""
    region = f"Region-{uuid.uuid4().hex[:8]}"
    code = f"HA{uuid.uuid4().hex[:6].upper()}"
    ids = {name: f"NI{uuid.uuid4().hex[:10].upper()}" for name in ("Halima", "Omar", "Awa")}
    rows = [f"Halima,Sow,1970-01-01,F,{ids['Halima']},{code},1,HEAD,{region},none,120",
            f"Omar,Sow,1968-01-01,M,{ids['Omar']},{code},2,SPOUSE,{region},severe,80",
            f"Awa,Sow,2012-01-01,F,{ids['Awa']},{code},0,DAUGHTER,{region},,0"]
    path = database.inbox / f"{region}.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    run_steps(WORKFLOW, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
              run_id=uuid.uuid4().hex)
    return {"region": region, "household": code, **ids}


def secret(database, client_id: str) -> str:
    return json.loads(database.registry_api_secrets.read_text())[client_id]


def token(api: str, database, client_id: str) -> str:
    answer = httpx.post(f"{api}/oauth2/client/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret(database, client_id)})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def now() -> str:
    return datetime.now(UTC).isoformat()


def envelope(*items: dict[str, Any], **header: Any) -> dict[str, Any]:
    return {"header": {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": now(), "action": "search",
                       "sender_id": "tests", "total_count": len(items), **header},
            "message": {"transaction_id": uuid.uuid4().hex[:20], "search_request": list(items)}}


def item(query_type: str, query: Any, reference_id: str | None = None, **criteria: Any) -> dict[str, Any]:
    return {"reference_id": reference_id or uuid.uuid4().hex, "timestamp": now(), "locale": "eng",
            "search_criteria": {"version": "1.0.0", "query_type": query_type, "query": query, **criteria}}


def search(api: str, bearer: str | None, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(f"{api}/registry/sync/search", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def ministry(api, database) -> str:
    return token(api, database, "ministry-mis")


@pytest.fixture(scope="module")
def payments(api, database) -> str:
    return token(api, database, "payments-system")


def answered(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert_conforms(body, "sync_search_response")
    return body["message"]["search_response"]


def test_an_identifier_finds_the_person_in_the_specs_shape(api, ministry, family) -> None:
    [result] = answered(search(api, ministry, envelope(item("idtype-value", {"type": "UIN", "value": family["Omar"]}))))
    assert result["status"] == "succ" and result["pagination"]["total_count"] == 1
    [person] = result["data"]["reg_records"]
    assert person["name"] == {"@type": "Name", "given_name": "Omar", "surname": "Sow"}
    assert person["sex"] == "male" and person["birth_date"] == "1968-01-01"
    assert {"identifier_type": "UIN", "identifier_value": family["Omar"], "@type": "Identifier"} in person["identifier"]
    assert person["group_identifier"][0]["identifier_value"] == family["household"]
    assert person["relationship_head"] == "SPOUSE"
    assert {"disability": "severe"} in person["additional_attributes"]


def test_a_client_gets_only_the_attributes_in_its_scope(api, payments, family) -> None:
    [result] = answered(search(api, payments, envelope(item("idtype-value", {"type": "UIN", "value": family["Omar"]}))))
    [person] = result["data"]["reg_records"]
    assert set(person) == {"@type", "@id", "identifier", "name", "sex", "birth_date", "registration_date",
                           "last_updated"}
    assert "additional_attributes" not in person and "group_identifier" not in person


def test_outside_its_scope_a_client_is_refused_with_403(api, payments, family) -> None:
    predicate = [{"seq_num": 1, "expression1": {"attribute_name": "region", "operator": "eq",
                                                "attribute_value": family["region"]}}]
    refused = [search(api, payments, envelope(item("predicate", predicate))),  # query type
               search(api, payments, envelope(item("idtype-value", {"type": "UIN", "value": family["Omar"]},
                                                   response_entity="Group"))),  # record type
               search(api, payments, envelope(item("idtype-value", {"type": "HOUSEHOLD_CODE",
                                                                    "value": family["household"]})))]  # attribute
    for response in refused:
        assert response.status_code == 403, response.text
        assert response.json()["errors"][0]["code"] == "err.request.forbidden"


def test_searching_on_an_attribute_the_client_may_not_read_is_refused(api, database, family) -> None:
    hasty = token(api, database, "hasty-partner")
    response = search(api, hasty, envelope(item("idtype-value", {"type": "UIN", "value": family["Omar"]})))
    assert response.status_code == 403 and "national_id" in response.text


def test_a_predicate_selects_by_whitelisted_attributes_with_literal_values(api, ministry, family) -> None:
    predicate = [{"seq_num": 2, "expression1": {"attribute_name": "age", "operator": "ge", "attribute_value": "18"}},
                 {"seq_num": 1, "expression1": {"attribute_name": "region", "operator": "eq",
                                                "attribute_value": family["region"]},
                  "condition": "not", "expression2": {"attribute_name": "disability", "operator": "eq",
                                                      "attribute_value": "severe"}}]
    [result] = answered(search(api, ministry, envelope(item("predicate", predicate))))
    assert [p["name"]["given_name"] for p in result["data"]["reg_records"]] == ["Halima"]


def test_an_expression_selects_with_the_whitelisted_operators(api, ministry, family) -> None:
    query = {"type": "ns:org:QueryType:expression", "value": {"expression": {"collection": "Member", "query": {
        "$and": [{"region": {"$eq": family["region"]}},
                 {"$or": [{"income": {"$lt": 100}}, {"first_name": {"$in": ["Halima"]}}]}]}}}}
    [result] = answered(search(api, ministry, envelope(item("expression", query, sort=[
        {"attribute_name": "first_name", "sort_order": "desc"}]))))
    assert [p["name"]["given_name"] for p in result["data"]["reg_records"]] == ["Omar", "Halima", "Awa"]


def test_injection_through_a_query_is_a_rejected_item_not_sql(api, ministry, family) -> None:
    bad = [item("expression", {"value": {"expression": {"query": {"region; drop table x": {"$eq": "x"}}}}}),
           item("expression", {"value": {"expression": {"query": {"region": {"$where": "1=1"}}}}}),
           item("predicate", [{"expression1": {"attribute_name": "age", "operator": "eq",
                                               "attribute_value": "1 or 1=1"}}])]
    results = answered(search(api, ministry, envelope(*bad)))
    assert [r["status_reason_code"] for r in results] == ["rjct.search_criteria.invalid"] * 2 + ["rjct.filter.invalid"]


def test_pages_one_to_n_add_up_to_the_total(api, ministry, family) -> None:
    query = [{"expression1": {"attribute_name": "household_code", "operator": "eq",
                              "attribute_value": family["household"]}}]
    seen = []
    for page in (1, 2, 3):
        [result] = answered(search(api, ministry, envelope(item("predicate", query, pagination={
            "page_size": 1, "page_number": page}))))
        assert result["pagination"] == {"page_size": 1, "page_number": page, "total_count": 3}
        seen += [p["@id"] for p in result["data"]["reg_records"]]
    assert len(set(seen)) == 3


def test_a_batch_answers_each_item_on_its_own(api, ministry, family) -> None:
    good = item("idtype-value", {"type": "UIN", "value": family["Awa"]}, "good-one")
    too_big = item("idtype-value", {"type": "UIN", "value": family["Awa"]}, "too-big",
                   pagination={"page_size": 10_000})
    stale = {**item("idtype-value", {"type": "UIN", "value": family["Awa"]}, "bad-time"), "timestamp": "yesterday"}
    results = answered(search(api, ministry, envelope(good, too_big, stale,
                                                      item("idtype-value", {"type": "UIN", "value": "X"}, "good-one"))))
    assert [(r["reference_id"], r["status"], r.get("status_reason_code")) for r in results] == [
        ("good-one", "succ", None), ("too-big", "rjct", "rjct.pagination.invalid"),
        ("bad-time", "rjct", "rjct.timestamp.invalid"), ("good-one", "rjct", "rjct.reference_id.duplicate")]


def test_a_household_comes_with_its_members(api, ministry, family) -> None:
    [result] = answered(search(api, ministry, envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]},
                                                            response_entity="Group"))))
    [household] = result["data"]["reg_records"]
    assert household["group_identifier"][0]["identifier_value"] == family["household"]
    assert household["group_size"] == 3
    assert household["group_head_info"]["demographic_info"]["name"]["given_name"] == "Halima"
    assert sorted(m["relationship_head"] for m in household["member_list"]) == ["DAUGHTER", "HEAD", "SPOUSE"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"version": "2.0.0"}, "rjct.version.invalid"),
    ({"action": "subscribe"}, "rjct.action.invalid"),
    ({"total_count": 5}, "rjct.total_count.invalid"),
    ({"message_ts": "2026-12-06 10:00"}, "rjct.message_ts.invalid"),
])
def test_a_bad_header_rejects_the_message(api, ministry, family, change, reason) -> None:
    response = search(api, ministry, envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}), **change))
    assert response.status_code == 200
    assert_conforms(response.json(), "sync_search_response")
    assert response.json()["header"]["status"] == "rjct"
    assert response.json()["header"]["status_reason_code"] == reason


@pytest.mark.parametrize("body", [
    "not json", "[" * 100_000, '{"header": ' + "9" * 5000 + "}", '{"header": {"message_id": "a\\u0000b"}}',
    '{"header": {"message_id": "\\ud800"}}',
    [], {"header": {}}, {"header": {"message_id": "1"}, "message": {}},
    {**envelope(), "message": {"transaction_id": "x" * 100, "search_request": []}},
    {**envelope(), "message": {"transaction_id": 12, "search_request": []}},
    {**envelope(), "extra": 1},
])
def test_a_malformed_envelope_is_a_bad_request_never_a_trace(api, ministry, body) -> None:
    headers = {"Authorization": f"Bearer {ministry}", "Content-Type": "application/json"}
    response = httpx.post(f"{api}/registry/sync/search", content=body if isinstance(body, str) else json.dumps(body),
                          headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "err.request.bad"
    assert "Traceback" not in response.text


def test_a_locale_must_be_three_small_letters(api, ministry, family) -> None:
    request = {**item("idtype-value", {"type": "UIN", "value": family["Awa"]}), "locale": "en"}
    [result] = answered(search(api, ministry, envelope(request)))
    assert result["status"] == "rjct" and result["status_reason_code"] == "rjct.search_criteria.invalid"


def test_without_a_valid_token_the_answer_is_401(api, database, family) -> None:
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}))
    forged = signing.jwt.encode({"sub": "ministry-mis", "aud": signing.TOKEN_AUDIENCE, "iss": signing.SERVICE_ID,
                                 "iat": 0, "exp": 4_000_000_000}, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    for bearer in (None, "not-a-token", forged):
        response = search(api, bearer, body)
        assert response.status_code == 401 and response.json()["errors"][0]["code"] == "err.request.unauthorized"
    wrong = httpx.post(f"{api}/oauth2/client/token", data={"grant_type": "client_credentials",
                                                           "client_id": "ministry-mis", "client_secret": "guess"})
    assert wrong.status_code == 401


def test_answers_are_signed_with_the_key_the_jwks_publishes(api, ministry, family) -> None:
    body = search(api, ministry, envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}))).json()
    [key] = httpx.get(f"{api}/.well-known/jwks.json").json()["keys"]
    assert_conforms({"keys": [key]}, "jwks")
    public = base64.b64encode(base64.urlsafe_b64decode(key["x"] + "==")).decode()
    assert signing.verify(body["signature"], body["header"], body["message"], public).sender_id == signing.SERVICE_ID
    tampered = {**body["message"], "transaction_id": "other"}
    with pytest.raises(signing.SignatureRefused):
        signing.verify(body["signature"], body["header"], tampered, public)
    assert isinstance(Ed25519PublicKey.from_public_bytes(base64.b64decode(public)), Ed25519PublicKey)


def test_a_client_that_must_sign_is_refused_unsigned_and_answered_signed(api, database, family) -> None:
    bearer = token(api, database, "signed-partner")
    body = envelope(item("idtype-value", {"type": "BENEFITFLOW_ID", "value": str(uuid.uuid4())}))
    unsigned = search(api, bearer, body)
    assert unsigned.status_code == 401 and unsigned.json()["errors"][0]["code"] == "err.signature.missing"
    forged = {**body, "signature": signing.sign(body["header"], body["message"], Ed25519PrivateKey.generate(),
                                                "signed-partner", "k1")}
    assert search(api, bearer, forged).json()["errors"][0]["code"] == "err.signature.invalid"
    signed = {**body, "signature": signing.sign(body["header"], body["message"], PARTNER_KEY, "signed-partner", "k1")}
    [result] = answered(search(api, bearer, signed))
    assert result["status"] == "succ" and result["pagination"]["total_count"] == 0


def test_a_client_over_its_rate_is_answered_429(api, database) -> None:
    bearer = token(api, database, "hasty-partner")
    body = envelope(item("idtype-value", {"type": "BENEFITFLOW_ID", "value": str(uuid.uuid4())}))
    statuses = [search(api, bearer, body).status_code for _ in range(5)]
    assert statuses[-1] == 429 and statuses.count(429) >= 2


def test_every_answer_is_in_the_audit_trail_with_the_ids_returned(api, ministry, family) -> None:
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Halima"]}, "audited"))
    [result] = answered(search(api, ministry, body))
    [person] = result["data"]["reg_records"]
    with db.transaction() as cur:
        cur.execute("SELECT actor, outcome, details FROM ledger.audit_events WHERE action = 'registry_api.answer'"
                    " AND details ->> 'message_id' = %s", (body["header"]["message_id"],))
        [(actor, outcome, details)] = cur.fetchall()
    assert actor == "registry-api:ministry-mis" and outcome == "ANSWERED"
    [audited] = details["items"]
    assert audited["search_request"] == body["message"]["search_request"][0]  # the query as sent
    assert audited["ids"] == [person["@id"].rsplit(":", 1)[1]] and audited["returned"] == 1
    assert details["http_status"] == 200 and details["milliseconds"] > 0


def test_the_service_login_reads_the_registry_and_nothing_else(database, api) -> None:
    url = database.database_url("benefitflow_registry_api", "benefitflow")
    for statement in ("SELECT count(*) FROM ledger.individual_versions", "SELECT count(*) FROM intake.uploads",
                      "SELECT count(*) FROM marts.mart_registry_individuals",
                      "SELECT details FROM ledger.audit_events LIMIT 1",
                      "UPDATE registry.individuals SET first_name = 'x'"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), db.transaction(url) as cur:
            cur.execute(statement)
    with db.transaction(url) as cur:
        cur.execute("SELECT count(*) FROM registry.individuals")
        assert cur.fetchone()[0] > 0


def test_managers_see_the_requests_without_personal_data(database, api, ministry, family) -> None:
    answered(search(api, ministry, envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}))))
    with db.transaction(database.database_url("superset_reader", "benefitflow")) as cur:
        cur.execute("SELECT * FROM marts.mart_registry_api_requests WHERE client = 'ministry-mis'"
                    " ORDER BY event_id DESC LIMIT 1")
        row = dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))
    assert row["outcome"] == "ANSWERED" and row["http_status"] == 200 and row["records_returned"] == 1
    assert not {"items", "details", "ids", "search_request"} & set(row)


def test_one_answer_holds_at_most_the_clients_page_of_records(api, payments, family) -> None:
    query = {"type": "UIN", "value": family["Awa"]}
    results = answered(search(api, payments, envelope(
        item("idtype-value", query, "first", pagination={"page_size": 15}),
        item("idtype-value", query, "second", pagination={"page_size": 15}),
        item("idtype-value", query, "deep", pagination={"page_size": 5, "page_number": 30_000}))))
    assert [(r["reference_id"], r["status"], r.get("status_reason_code")) for r in results] == [
        ("first", "succ", None), ("second", "rjct", "rjct.pagination.invalid"),
        ("deep", "rjct", "rjct.search.too_many_records_found")]
    shares = answered(search(api, payments, envelope(*(item("idtype-value", query) for _ in range(3)))))
    assert [r["pagination"]["page_size"] for r in shares] == [6, 6, 6]  # 20 records shared out


def test_a_message_is_answered_once(api, ministry, family) -> None:
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}))
    assert answered(search(api, ministry, body))[0]["status"] == "succ"
    again = search(api, ministry, body)
    assert again.json()["header"]["status"] == "rjct"
    assert again.json()["header"]["status_reason_code"] == "rjct.message_id.duplicate"


def test_a_household_answer_audits_every_member_sent(api, ministry, family) -> None:
    body = envelope(item("idtype-value", {"type": "UIN", "value": family["Awa"]}, response_entity="Group"))
    [result] = answered(search(api, ministry, body))
    sent = {m["@id"].rsplit(":", 1)[1] for m in result["data"]["reg_records"][0]["member_list"]}
    with db.transaction() as cur:
        cur.execute("SELECT details -> 'items' -> 0 FROM ledger.audit_events WHERE action = 'registry_api.answer'"
                    " AND details ->> 'message_id' = %s", (body["header"]["message_id"],))
        [(audited,)] = cur.fetchall()
    assert set(audited["ids"]) == sent and len(sent) == 3 and audited["households"] == [family["household"]]
    assert audited["returned"] == 3


def test_a_signature_must_name_the_client_that_sends_it(api, database) -> None:
    bearer = token(api, database, "signed-partner")
    body = envelope(item("idtype-value", {"type": "BENEFITFLOW_ID", "value": str(uuid.uuid4())}))
    posing = {**body, "signature": signing.sign(body["header"], body["message"], PARTNER_KEY, "ministry-mis", "k1")}
    response = search(api, bearer, posing)
    assert response.status_code == 401 and "sender" in response.text


def test_the_token_endpoint_takes_a_small_form_only(api) -> None:
    as_json = httpx.post(f"{api}/oauth2/client/token", json={"grant_type": "client_credentials"})
    assert as_json.status_code == 415 and as_json.json()["errors"][0]["code"] == "err.request.bad"
    huge = httpx.post(f"{api}/oauth2/client/token", content=b"client_id=" + b"x" * 10_000,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413
