"""The DCI query types compiled into the filter language: whitelisted attributes, literal values, the client's
scope; and the clients' configuration refused when it names what the registry does not have."""

from __future__ import annotations

import pytest
from psycopg2 import sql

from benefitflow.registry_api import clients, queries, records

SETTINGS = clients.parse({
    "identifier_types": {"UIN": "national_id", "BENEFITFLOW_ID": "individual_id"},
    "clients": {
        "all": {"record_types": ["Member", "Group"], "attributes": "*",
                "query_types": ["idtype-value", "predicate", "expression"]},
        "names": {"record_types": ["Member"], "attributes": ["first_name", "dob"], "query_types": ["predicate"]},
    },
})


def compiled(query_type: str, query, client: str = "all") -> queries.Compiled:
    return queries.compile_query(query_type, query, SETTINGS.clients[client], SETTINGS, records.search_fields())


def test_a_predicate_becomes_a_filter_document_in_seq_num_order_with_typed_values() -> None:
    document = compiled("predicate", [
        {"seq_num": 2, "expression1": {"attribute_name": "income", "operator": "lt", "attribute_value": "2.5"}},
        {"seq_num": 1, "expression1": {"attribute_name": "age", "operator": "ge", "attribute_value": "18"},
         "condition": "not", "expression2": {"attribute_name": "able_bodied", "operator": "eq",
                                              "attribute_value": "true"}},
    ]).document
    assert document == {"all": [
        {"all": [{"field": "age", "op": ">=", "value": 18}, {"not": {"field": "able_bodied", "op": "=", "value": True}}]},
        {"field": "income", "op": "<", "value": 2.5}]}


def test_an_expression_becomes_a_filter_document() -> None:
    query = {"value": {"expression": {"collection": "Member", "query": {
        "$or": [{"region": "North"}, {"number_of_children": {"$gte": 3, "$lt": 9}}, {"sex": {"$in": ["F"]}}]}}}}
    assert compiled("expression", query).document == {"any": [
        {"field": "region", "op": "=", "value": "North"},
        {"all": [{"field": "number_of_children", "op": ">=", "value": 3},
                 {"field": "number_of_children", "op": "<", "value": 9}]},
        {"field": "sex", "op": "in", "value": ["F"]}]}


def test_values_are_literals_in_the_sql() -> None:
    value = "X'); DROP TABLE y; --"
    condition = compiled("idtype-value", {"type": "UIN", "value": value}).condition

    def literals(node) -> list:
        if isinstance(node, sql.Literal):
            return [node.wrapped]
        return [found for part in getattr(node, "seq", []) for found in literals(part)]

    assert literals(condition) == [value]
    assert value not in "".join(part.string for part in _plain_sql(condition))


def _plain_sql(node) -> list:
    if isinstance(node, sql.SQL):
        return [node]
    return [found for part in getattr(node, "seq", []) for found in _plain_sql(part)]


@pytest.mark.parametrize(("query_type", "query", "forbidden"), [
    ("predicate", [{"expression1": {"attribute_name": "income", "operator": "lt", "attribute_value": 1}}], True),
    ("expression", {"value": {"expression": {"query": {"first_name": "A"}}}}, True),  # query type out of scope
    ("predicate", [{"expression1": {"attribute_name": "nope", "operator": "eq", "attribute_value": 1}}], False),
    ("predicate", [{"expression1": {"attribute_name": "dob", "operator": "like", "attribute_value": 1}}], False),
    ("predicate", [{"expression1": {"attribute_name": "dob", "operator": "eq", "attribute_value": "soon"}}], False),
    ("predicate", [], False),
])
def test_out_of_scope_is_forbidden_and_malformed_is_rejected(query_type, query, forbidden) -> None:
    with pytest.raises(queries.QueryRefused) as refused:
        compiled(query_type, query, "names")
    assert refused.value.forbidden is forbidden


def test_an_individual_id_must_be_a_uuid_and_is_compared_as_one() -> None:
    with pytest.raises(queries.QueryRefused, match="UUID"):
        compiled("idtype-value", {"type": "BENEFITFLOW_ID", "value": "1 OR 1=1"})
    ok = compiled("idtype-value", {"type": "BENEFITFLOW_ID", "value": "0b5f4c1e-7a57-4a53-9c85-2d2a3b8c6f10"})
    assert ok.document["field"] == "individual_id"


def test_a_client_reads_age_only_with_dob_and_a_group_client_reads_household_codes() -> None:
    names, everything = SETTINGS.clients["names"], SETTINGS.clients["all"]
    assert names.may_read("age") and not names.may_read("household_size") and not names.may_read("national_id")
    assert everything.may_read("household_code") and everything.may_read("disability")


@pytest.mark.parametrize("entry", [
    {"record_types": ["Person"], "attributes": "*", "query_types": ["predicate"]},
    {"record_types": ["Member"], "attributes": ["salary"], "query_types": ["predicate"]},
    {"record_types": ["Member"], "attributes": "*", "query_types": ["sql"]},
    {"record_types": ["Member"], "attributes": "*", "query_types": ["predicate"], "require_signed_requests": True},
])
def test_a_wrong_client_entry_stops_the_service_with_a_message(entry) -> None:
    with pytest.raises(clients.ClientConfigurationError, match="client x"):
        clients.parse({"clients": {"x": entry}})
