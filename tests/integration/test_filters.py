"""The filter language on a real PostgreSQL: right rows, clear errors, hostile values stay values."""

from __future__ import annotations

import json

import pytest
from psycopg2 import sql

from benefitflow.core import db
from benefitflow.core.filters import FilterError, age_field, compile_filter, core_field, schema_fields

SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "enum": ["North", "South", "East"]},
        "income": {"type": "number", "minimum": 0},
        "children": {"type": "integer"},
        "disabled": {"type": "boolean"},
        "registered": {"type": "string", "format": "date"},
        "note": {"type": ["string", "null"]},
    },
}
FIELDS = {
    "first_name": core_field("first_name", "string"),
    "dob": core_field("dob", "date"),
    "age": age_field(),
    **schema_fields(SCHEMA),
}
PEOPLE = [
    ("Ann", "1980-05-01", {"region": "North", "income": 120.5, "children": 3, "disabled": False,
                           "registered": "2020-01-01", "note": "50% done_x"}),
    ("Bob", "2015-02-02", {"region": "South", "income": 0, "children": 0, "disabled": True,
                           "registered": "2021-06-30"}),
    ("O'Brien", "1950-12-31", {"region": "North", "children": 7, "disabled": False, "note": "it's"}),
    ("Zoë", "2001-07-15", {"region": "East", "income": 99999999999999.99, "children": 1,
                           "registered": "2022-02-28", "note": "'; DROP TABLE people; --"}),
]


@pytest.fixture(scope="module")
def people(database) -> str:
    with db.transaction(database.owner_database_url) as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS public.filter_people (first_name text, dob date, attributes jsonb)")
        cur.execute("TRUNCATE public.filter_people")
        for name, dob, attributes in PEOPLE:
            cur.execute("INSERT INTO public.filter_people VALUES (%s, %s, %s::jsonb)", (name, dob, json.dumps(attributes)))
    return "public.filter_people"


def select(database, document) -> list[str]:
    condition = compile_filter(document, FIELDS)
    with db.transaction(database.owner_database_url) as cur:
        cur.execute(sql.SQL("SELECT first_name FROM public.filter_people WHERE {} ORDER BY first_name").format(condition))
        return [row[0] for row in cur.fetchall()]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, ["Ann", "Bob", "O'Brien", "Zoë"]),
        ({"all": [{"field": "age", "op": ">=", "value": 18}, {"field": "region", "op": "in", "value": ["North"]}]},
         ["Ann", "O'Brien"]),
        ({"any": [{"field": "children", "op": ">", "value": 5}, {"field": "disabled", "op": "=", "value": True}]},
         ["Bob", "O'Brien"]),
        ({"not": {"field": "region", "op": "=", "value": "North"}}, ["Bob", "Zoë"]),
        ({"field": "income", "op": "is null"}, ["O'Brien"]),
        ({"field": "registered", "op": "<", "value": "2021-12-31"}, ["Ann", "Bob"]),
        ({"field": "first_name", "op": "starts with", "value": "o'"}, ["O'Brien"]),
        ({"field": "note", "op": "contains", "value": "50%"}, ["Ann"]),
        ({"field": "note", "op": "contains", "value": "_"}, ["Ann"]),  # _ is not a wildcard
        ({"field": "note", "op": "=", "value": "'; DROP TABLE people; --"}, ["Zoë"]),
        ({"field": "first_name", "op": "=", "value": "Zoë"}, ["Zoë"]),
        ({"field": "income", "op": ">=", "value": 99999999999999.99}, ["Zoë"]),
        ({"field": "region", "op": "not in", "value": ["North", "South"]}, ["Zoë"]),
        ({"field": "dob", "op": ">", "value": "2000-01-01"}, ["Bob", "Zoë"]),
    ],
)
def test_filters_select_the_right_rows(database, people, document, expected) -> None:
    assert select(database, document) == expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"field": "salary", "op": "=", "value": 1}, r"filter: unknown field 'salary'"),
        ({"field": "first_name; DROP TABLE x", "op": "=", "value": 1}, "unknown field"),
        ({"field": "age", "op": "contains", "value": "1"}, "operator 'contains' is not allowed for integer"),
        ({"field": "age", "op": "=", "value": "18"}, "expected a number, got str"),
        ({"field": "age", "op": "=", "value": True}, "expected a number, got bool"),
        ({"field": "age", "op": "=", "value": 18.5}, "expected a whole number"),
        ({"field": "income", "op": ">", "value": 10**40}, "number out of range"),
        ({"field": "region", "op": "=", "value": "West"}, "not one of"),
        ({"field": "dob", "op": "=", "value": "1980-02-30"}, "is not a date"),
        ({"field": "disabled", "op": "=", "value": "yes"}, "expected true or false"),
        ({"field": "region", "op": "in", "value": []}, "needs a list"),
        ({"field": "region", "op": "is null", "value": 1}, "takes no value"),
        ({"field": "region", "op": "="}, "needs a value"),
        ({"all": []}, r"filter.all: expected a non-empty list"),
        ({"all": [{"field": "age", "op": "=", "value": 1}], "any": []}, "exactly one key"),
        ({"all": [{"any": [{"field": "x", "op": "=", "value": 1}]}]}, r"filter.all\[0\].any\[0\]: unknown field"),
        ({"field": "region", "op": "=", "value": "North", "extra": 1}, "a condition is"),
        ([1, 2], "expected an object"),
        ({"field": "note", "op": "contains", "value": "a\x00b"}, "NUL"),
        ({"field": "note", "op": "contains", "value": "x" * 1001}, "longer than"),
    ],
)
def test_bad_filters_are_clear_errors(document, message) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(document, FIELDS)


def test_deep_nesting_is_refused() -> None:
    document: dict = {"field": "age", "op": "=", "value": 1}
    for _ in range(10):
        document = {"not": document}
    with pytest.raises(FilterError, match="nested more than"):
        compile_filter(document, FIELDS)


def test_hostile_values_leave_the_table_alone(database, people) -> None:
    for hostile in ["'; DROP TABLE public.filter_people; --", "\\'; SELECT 1; --", "/* */ OR 1=1 --", "‮evil"]:
        assert select(database, {"field": "first_name", "op": "=", "value": hostile}) == []
        assert select(database, {"field": "note", "op": "contains", "value": hostile}) == []
    assert len(select(database, None)) == len(PEOPLE)


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_age_compared_as_dates_of_birth_selects_what_age_would(database, op) -> None:
    """age <op> n is compiled to a range of dates of birth (an index serves it): the same people as age() itself,
    on each side of every birthday, on 29 February, and none without a date of birth. (Dates of birth in the
    future, which the registry refuses, differ: age() calls someone born tomorrow 0.)"""
    with db.transaction(database.owner_database_url) as cur:
        cur.execute("SELECT array_agg(d ORDER BY d) FROM (SELECT DISTINCT d FROM (SELECT (current_date"
                    " - make_interval(years => n))::date + shift AS d FROM unnest(ARRAY[0, 1, 17, 18, 60]) AS n,"
                    " unnest(ARRAY[-1, 0, 1]) AS shift UNION ALL SELECT unnest(ARRAY['2008-02-29', '1964-02-29',"
                    " '2007-02-28', '2007-03-01']::date[])) AS dates WHERE d <= current_date) AS distinct_dates")
        dobs = [*cur.fetchone()[0], None]
        fields = {"age": age_field("dob")}
        for years in (0, 1, 17, 18, 60):
            condition = compile_filter({"field": "age", "op": op, "value": years}, fields)
            cur.execute(sql.SQL("SELECT array_agg(dob ORDER BY dob) FILTER (WHERE {}),"
                                " array_agg(dob ORDER BY dob) FILTER (WHERE date_part('year', age(current_date, dob))"
                                " {} %s) FROM unnest(%s::date[]) AS dob").format(condition, sql.SQL(op)),
                        (years, dobs))
            compiled, direct = cur.fetchone()
            assert compiled == direct, (op, years)
