"""Step 2, validate: run a Great Expectations suite against a staged table in PostgreSQL.

Suites are JSON files in `expectations/`. GX answers which expectations failed and
gives, for each, a query selecting every failing row; the per-row error report is
built from those queries in SQL (set-based, no row limit), then written to CSV.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core import file_store
from benefitflow.core.config import EXPECTATIONS_DIR

if TYPE_CHECKING:  # GX takes ~3 s to import: DAG files import this module, only tasks need GX
    from great_expectations.core import ExpectationSuite

logging.getLogger("great_expectations").setLevel(logging.WARNING)


class SuiteError(RuntimeError):
    """A suite file that does not load completely (a defect in the platform, not in the upload)."""


@dataclass(frozen=True)
class ValidationSummary:
    """What validation found, counted from intake.row_errors (GX's errors and any SQL check's)."""

    row_count: int
    invalid_row_count: int
    errors_by_rule: dict[str, int]
    warnings_by_rule: dict[str, int]
    blocking_file_errors: list[str]

    @property
    def valid_row_count(self) -> int:
        return self.row_count - self.invalid_row_count


def suite_path(name: str) -> Path:
    return EXPECTATIONS_DIR / f"{name}.json"


def load_suite(name: str) -> ExpectationSuite:
    """Load `expectations/<name>.json`; refuse a suite that loses any expectation on the way."""
    document = json.loads(suite_path(name).read_text())
    return suite_from_document(document)


def suite_from_document(document: dict[str, Any]) -> ExpectationSuite:
    from great_expectations.core import ExpectationSuite

    declared = len(document.get("expectations", []))
    try:
        suite = ExpectationSuite(**document)
    except Exception as exc:  # GX raises several unrelated types for a bad entry
        raise SuiteError(f"suite {document.get('name')!r} does not load: {exc}") from exc
    if len(suite.expectations) != declared:
        raise SuiteError(
            f"suite {document.get('name')!r} lists {declared} expectations but {len(suite.expectations)} loaded"
        )
    return suite


def _sqlalchemy_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+psycopg2://", 1)


def run_suite(database_url: str, schema: str, table: str, suite: ExpectationSuite) -> list[dict[str, Any]]:
    """Run the suite on the whole table; return GX's per-expectation results as dicts."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_postgres("benefitflow", connection_string=_sqlalchemy_url(database_url))
    asset = source.add_table_asset(table, table_name=table, schema_name=schema)
    batch = asset.add_batch_definition_whole_table("whole_table")
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(gx.ValidationDefinition(data=batch, suite=suite, name=table))
    # Counts and the query selecting the failing rows (record_errors runs it in the database), no failing
    # values fetched into this process: not COMPLETE (every value and row number), and no sample (each
    # sample is a query of its own, a whole scan when few rows fail). BASIC keeps table-level observed values.
    result = definition.run(result_format={
        "result_format": "BASIC", "partial_unexpected_count": 0, "unexpected_index_column_names": ["row_number"],
        "return_unexpected_index_query": True,
    })
    return [item.to_json_dict() for item in result.results]


def rule_name(expectation: dict[str, Any]) -> str:
    config = expectation["expectation_config"]
    column = config["kwargs"].get("column")
    short = config["type"].removeprefix("expect_")
    return f"{column}:{short}" if column else short


def rule_message(expectation: dict[str, Any]) -> str:
    config = expectation["expectation_config"]
    if message := (config.get("meta") or {}).get("message"):
        return str(message)
    kwargs = config["kwargs"]
    kind = config["type"]
    templates = {
        "expect_column_values_to_not_be_null": "a value is required",
        "expect_column_values_to_be_unique": "the value appears more than once in the file",
        "expect_column_values_to_match_regex": f"does not match the pattern {kwargs.get('regex')}",
        "expect_column_values_to_be_in_set": f"not one of {kwargs.get('value_set')}",
        "expect_column_values_to_be_between": (
            f"outside the range {kwargs.get('min_value')} to {kwargs.get('max_value')}"
        ),
        "expect_column_value_lengths_to_be_between": (
            f"length outside {kwargs.get('min_value')} to {kwargs.get('max_value')}"
        ),
    }
    return templates.get(kind, kind.removeprefix("expect_").replace("_", " "))


def record_errors(
    cur: psycopg2.extensions.cursor, upload_id: int, results: list[dict[str, Any]], schema: str, table: str
) -> list[str]:
    """Write every failing row of every failed expectation to intake.row_errors.

    The value reported is the one the user wrote: an expectation on a derived column
    (say `dob__age`) names the column it comes from in `meta.report_column`. Returns the
    blocking errors that concern the file as a whole (not a row).
    """
    blocking_file_errors: list[str] = []
    cur.execute("DELETE FROM intake.row_errors WHERE upload_id = %s", (upload_id,))
    for expectation in results:
        if expectation["success"]:
            continue
        config = expectation["expectation_config"]
        severity = config.get("severity") or "critical"
        rule, message = rule_name(expectation), rule_message(expectation)
        column = config["kwargs"].get("column")
        reported = (config.get("meta") or {}).get("report_column") or column
        query = (expectation.get("result") or {}).get("unexpected_index_query")
        if column and query:
            cur.execute(
                sql.SQL(
                    "INSERT INTO intake.row_errors (upload_id, row_number, column_name, rule, value, message, severity)"
                    " SELECT %s, checked.row_number, %s, %s, checked.{}::text, %s, %s"
                    " FROM ({}) AS failing JOIN {}.{} AS checked ON checked.row_number = failing.row_number"
                ).format(sql.Identifier(reported), sql.SQL(query.strip().rstrip(";")),
                         sql.Identifier(schema), sql.Identifier(table)),
                (upload_id, reported, rule, message, severity),
            )
        else:
            observed = (expectation.get("result") or {}).get("observed_value")
            cur.execute(
                "INSERT INTO intake.row_errors (upload_id, row_number, column_name, rule, value, message, severity)"
                " VALUES (%s, NULL, %s, %s, %s, %s, %s)",
                (upload_id, reported, rule, None if observed is None else str(observed), message, severity),
            )
            if severity == "critical":
                blocking_file_errors.append(f"{rule}: {message} (observed {observed})")
    return blocking_file_errors


def summarise(
    cur: psycopg2.extensions.cursor, upload_id: int, row_count: int, blocking_file_errors: list[str]
) -> ValidationSummary:
    """Count the upload's recorded errors: rows blocked, errors and warnings by rule."""
    cur.execute(
        "SELECT count(DISTINCT row_number) FILTER (WHERE row_number IS NOT NULL AND severity = 'critical')"
        " FROM intake.row_errors WHERE upload_id = %s",
        (upload_id,),
    )
    invalid = int(cur.fetchone()[0])
    cur.execute(
        "SELECT severity, rule, count(*) FROM intake.row_errors WHERE upload_id = %s AND severity IN"
        " ('critical', 'warning') GROUP BY severity, rule ORDER BY rule",
        (upload_id,),
    )
    by_rule: dict[str, dict[str, int]] = {"critical": {}, "warning": {}}
    for severity, rule, count in cur.fetchall():
        by_rule[severity][rule] = count
    return ValidationSummary(row_count, invalid, by_rule["critical"], by_rule["warning"], blocking_file_errors)


def write_suite(suite: ExpectationSuite, target: Path) -> Path:
    """The suite as run, every expectation with its parameters: generated suites can be read like written ones."""
    with file_store.replaced_text(target) as handle:
        json.dump(suite.to_json_dict(), handle, indent=2, sort_keys=True)
    return target


def write_error_report(cur: psycopg2.extensions.cursor, upload_id: int, file_name: str, target: Path) -> Path:
    """The downloadable per-row error report: file, row, column, rule, value, message."""
    query = sql.SQL(
        "COPY (SELECT {file} AS file, row_number AS row, {column} AS column, rule, {value} AS value,"
        " {message} AS message, severity FROM intake.row_errors WHERE upload_id = {upload}"
        " ORDER BY row_number NULLS FIRST, column_name, rule) TO STDOUT WITH (FORMAT csv, HEADER true)"
    ).format(file=file_store.spreadsheet_safe(sql.Literal(file_name)),
             column=file_store.spreadsheet_safe(sql.Identifier("column_name")),
             value=file_store.spreadsheet_safe(sql.Identifier("value")),
             message=file_store.spreadsheet_safe(sql.Identifier("message")), upload=sql.Literal(upload_id))
    with file_store.replaced_text(target) as handle:
        cur.copy_expert(query.as_string(cur), handle)
    return target
