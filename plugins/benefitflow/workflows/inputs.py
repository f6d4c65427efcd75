"""Step 1, intake: register an uploaded file and stream its rows into a staging table.

Nothing here parses rows in Python: the header is read to check it, the rest goes to
PostgreSQL with COPY. Every refusal names the file (and the row and column where there
is one) and leaves the upload's record and the original file in place.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core import audit, config, db, file_store
from benefitflow.core.errors import IntakeError
from benefitflow.core.file_store import HandedIn

MAX_IDENTIFIER_BYTES = 63
ARCHIVE_HEADROOM_BYTES = 64 << 20  # left free beside an archived upload: the error report and the next upload
RECEIVING_PREFIX = ".receiving-"  # an original being copied into the archive, before its upload has an id
ARCHIVE_LOCK = "benefitflow.archive"
OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass(frozen=True)
class FileSpec:
    """What a kind of upload must look like."""

    kind: str
    required_columns: tuple[str, ...]
    optional_columns: tuple[str, ...] = ()
    allow_extra_columns: bool = False
    aliases: tuple[tuple[str, str], ...] = ()  # (name users write, name used here), e.g. openIMIS's ("ID", "id")

    @property
    def known_columns(self) -> tuple[str, ...]:
        return self.required_columns + self.optional_columns


@dataclass(frozen=True)
class Upload:
    upload_id: int
    kind: str
    plan_code: str
    file_name: str
    stored_path: Path
    sha256: str
    size_bytes: int


def checksum(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_room_for(handed_in: HandedIn, archive_dir: Path) -> None:
    """Refuse, before copying a byte, a file larger than the platform takes in or than the archive has room for
    (a sparse file can claim terabytes)."""
    largest = config.max_upload_bytes()
    if handed_in.size_bytes > largest:
        raise IntakeError(f"file {handed_in.name}: {handed_in.size_bytes:,} bytes is more than the largest file "
                          f"taken in ({largest:,} bytes, BENEFITFLOW_MAX_UPLOAD_BYTES); split it")
    archive_dir.mkdir(parents=True, exist_ok=True)
    disk = os.statvfs(archive_dir)
    free = disk.f_bavail * disk.f_frsize
    if handed_in.size_bytes > free - ARCHIVE_HEADROOM_BYTES:
        raise IntakeError(f"file {handed_in.name}: {handed_in.size_bytes:,} bytes does not fit in the archive "
                          f"({free:,} bytes free in {archive_dir}); nothing was taken in, ask an operator for room")


def register(
    cur: psycopg2.extensions.cursor,
    *,
    handed_in: HandedIn,
    kind: str,
    plan_code: str,
    user: str,
    archive_dir: Path,
    dag_id: str | None = None,
    run_id: str | None = None,
    mode: str | None = None,
    operation: str | None = None,
) -> Upload:
    """Record the upload and keep a copy of the original; refuse a file seen before.

    The file is read once, from the descriptor the inbox gave: copied into the archive and
    hashed in the same pass. Everything after reads the archived copy.

    A run that takes in its file again (a retried or cleared intake) supersedes the upload it
    took in before, unless that one was applied: so the same file is accepted again for that
    run only, and an approval given to the earlier upload cannot commit the new one.
    """
    name = handed_in.name
    handed_in_by = _web_hand_in(cur, name, dag_id)
    if handed_in_by is not None and handed_in_by[0] != user:
        raise IntakeError(f"file {name} was handed in on the Upload page by someone else: only they may start a "
                          "workflow on it")
    check_room_for(handed_in, archive_dir)
    # Shared with every other intake; `remove_unrecorded_originals` takes it alone: it never meets a file archived by a
    # transaction still open.
    cur.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))", (ARCHIVE_LOCK,))
    receiving = archive_dir / f"{RECEIVING_PREFIX}{uuid.uuid4().hex}"
    try:
        with file_store.created_binary(receiving) as archived:
            sha256, size = file_store.copy_and_hash(handed_in.handle, archived, limit=handed_in.size_bytes)
        handed_in.check_unchanged()
        if handed_in_by is not None and handed_in_by[1] != sha256:
            raise IntakeError(f"file {name} is not the file handed in on the Upload page under that name")
        if dag_id and run_id:
            supersede_run_inputs(cur, "uploads", dag_id, run_id)
        if refusal := same_file_refusal(cur, name, kind=kind, plan_code=plan_code, sha256=sha256):
            raise IntakeError(refusal)
        cur.execute(
            "INSERT INTO intake.uploads (kind, plan_code, file_name, stored_path, sha256, size_bytes,"
            " uploaded_by, dag_id, run_id, mode, operation) VALUES (%s, %s, %s, '', %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING upload_id",
            (kind, plan_code, name, sha256, size, user, dag_id, run_id, mode, operation or dag_id),
        )
        upload_id = int(cur.fetchone()[0])
        stored = archive_dir / f"{upload_id:08d}-{name}"
        _keep_as(receiving, stored, name)
    finally:
        receiving.unlink(missing_ok=True)
    cur.execute("UPDATE intake.uploads SET stored_path = %s WHERE upload_id = %s", (str(stored), upload_id))
    audit.record(
        cur, actor=user, action="upload.received", object_type="upload", object_id=upload_id,
        outcome="RECEIVED",
        details={"kind": kind, "plan": plan_code, "file": name, "sha256": sha256, "size": size},
    )
    return Upload(upload_id, kind, plan_code, name, stored, sha256, size)


def _keep_as(receiving: Path, stored: Path, name: str) -> None:
    """Give the archived copy its name, never over an existing file (a hard link where the store has them)."""
    try:
        try:
            os.link(receiving, stored, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            with receiving.open("rb") as source, file_store.created_binary(stored) as target:
                file_store.copy_and_hash(source, target)
    except FileExistsError as exc:
        raise IntakeError(f"file {name}: the outbox already holds an archived file {stored.name} (was the database "
                          "restored without its outbox?); nothing was overwritten: tell the operators") from exc


# An archived original (`<upload id>-<name>`) or a copy being received this old, that no upload records, was left by an
# intake whose process died before its transaction committed (its retry took the file in again under another id).
ABANDONED_ORIGINAL_SECONDS = 3600
_ARCHIVED_NAME = re.compile(r"(\d{8,})-")


def remove_unrecorded_originals(archive_dir: Path) -> list[str]:
    """Archived originals no upload records, once an hour old: they hold personal data for no record, and go. What it
    did, a line each. One listing of the archive and one query: `make up` runs it (benefitflow.platform.cli)."""
    if not archive_dir.is_dir():
        return []
    with db.session_lock(ARCHIVE_LOCK, wait=False) as alone:
        if not alone:
            return ["left for later: intakes are archiving files now"]
        return _remove_unrecorded(archive_dir)


def _remove_unrecorded(archive_dir: Path) -> list[str]:
    receiving, numbered = [], {}
    with os.scandir(archive_dir) as entries:
        for entry in entries:
            if entry.name.startswith(RECEIVING_PREFIX):
                receiving.append(entry)
            elif found := _ARCHIVED_NAME.match(entry.name):
                numbered.setdefault(int(found[1]), []).append(entry)
    with db.transaction() as cur:
        cur.execute("SELECT upload_id FROM intake.uploads WHERE upload_id = ANY (%s)", (list(numbered),))
        recorded = {upload_id for (upload_id,) in cur.fetchall()}
    abandoned_before = time.time() - ABANDONED_ORIGINAL_SECONDS
    done = []
    for entry in receiving + [entry for upload_id, found in numbered.items() if upload_id not in recorded
                              for entry in found]:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < abandoned_before:
                os.unlink(entry.path)
                done.append(f"removed {entry.name}, archived by an intake that did not go through")
        except FileNotFoundError:  # removed meanwhile
            continue
    return done


WEB_FILE_PREFIX = "web-"  # the names the Upload page gives the files it takes (platform/file_receiver.py)


def _web_hand_in(cur: psycopg2.extensions.cursor, name: str, dag_id: str | None) -> tuple[str, str] | None:
    """(who, sha256) of a file handed in on the Upload page (for this DAG); None for a file put in the inbox
    otherwise."""
    if not name.startswith(WEB_FILE_PREFIX):
        return None
    cur.execute("SELECT handed_in_by, sha256, dag_id FROM intake.hand_ins WHERE file_name = %s", (name,))
    found = cur.fetchone()
    if found is None:
        raise IntakeError(f"file {name}: a name the Upload page gives, but the page did not take this file; "
                          "hand it in on the Upload page, or rename it")
    if dag_id and found[2] != dag_id:
        raise IntakeError(f"file {name} was handed in for {found[2]}, not {dag_id}: hand it in for this workflow")
    return str(found[0]), str(found[1])


def same_file_refusal(cur: psycopg2.extensions.cursor, name: str, *, kind: str, plan_code: str,
                      sha256: str) -> str | None:
    """Why a file with this content cannot be taken in for this kind (and plan): it was already, and not superseded."""
    cur.execute(
        "SELECT upload_id, uploaded_by, uploaded_at, status FROM intake.uploads"
        " WHERE kind = %s AND plan_code = %s AND sha256 = %s AND status <> 'SUPERSEDED'",
        (kind, plan_code, sha256),
    )
    if (earlier := cur.fetchone()) is None:
        return None
    return (f"file {name}: the same file (sha256 {sha256[:12]}…) was already uploaded as upload {earlier[0]} by "
            f"{earlier[1]} at {earlier[2]:%Y-%m-%d %H:%M} (status {earlier[3]}); it is not accepted twice")


# A run's input: its table in intake and that table's key.
INPUT_KEYS = {"uploads": "upload_id", "requests": "request_id"}
# An input still open when its run takes in another: it will never be committed.
_SUPERSEDABLE = ("RECEIVED", "WAITING_FOR_APPROVAL", "FAILED")


def supersede_run_inputs(cur: psycopg2.extensions.cursor, table: str, dag_id: str, run_id: str) -> None:
    """Mark this run's open uploads or requests SUPERSEDED (`table`: uploads or requests), with an audit event."""
    key = sql.Identifier(INPUT_KEYS[table])
    cur.execute(
        sql.SQL("UPDATE intake.{} SET status = 'SUPERSEDED', updated_at = now(),"
                " message = 'superseded: its run took in its input again'"
                " WHERE dag_id = %s AND run_id = %s AND status = ANY (%s) RETURNING {}"
                ).format(sql.Identifier(table), key),
        (dag_id, run_id, list(_SUPERSEDABLE)),
    )
    for (superseded,) in cur.fetchall():
        _let_go_of(cur, table, superseded)
        audit.record(cur, actor="system", action=f"{table[:-1]}.superseded", object_type=table[:-1],
                     object_id=superseded, outcome="SUPERSEDED", details={"dag_id": dag_id, "run_id": run_id})


def _let_go_of(cur: psycopg2.extensions.cursor, table: str, superseded: int) -> None:
    """A superseded input's scratch rows (personal data, never proposed now): its staged tables, or its selection."""
    if table == "requests":
        cur.execute("DELETE FROM intake.request_selection WHERE request_id = %s", (superseded,))
        return
    cur.execute("SELECT staged_table FROM intake.uploads WHERE upload_id = %s", (superseded,))
    if staged := cur.fetchone()[0]:
        drop_staged(cur, staged)


def read_header(path: Path, spec: FileSpec, name: str) -> list[str]:
    """Check the header line of `path` (the archived copy of file `name`): encoding, delimiter, names."""
    with path.open("rb") as handle:
        start = handle.read(1 << 16)
        handle.seek(0)
        first_line = handle.readline()
    if not first_line.strip():
        raise IntakeError(f"file {name} is empty: expected a CSV header line ({','.join(spec.required_columns)})")
    if b"\x00" in start:
        raise IntakeError(f"file {name} is not a CSV text file (it contains binary data); expected UTF-8 CSV")
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(
            f"file {name}: the header is not UTF-8 (byte {exc.start + 1}); save the file as UTF-8 "
            "(with or without BOM) — other encodings such as Latin-1 or Windows-1252 are not accepted"
        ) from exc
    header = next(csv.reader([text]))
    aliases = dict(spec.aliases)
    header = [aliases.get(column.strip(), column.strip()) for column in header]
    if len(header) == 1:
        for delimiter, label in OTHER_DELIMITERS.items():
            if delimiter in header[0]:
                raise IntakeError(
                    f"file {name}: columns are separated by {label} ({delimiter!r}); expected a comma-separated file"
                )
    _check_header_names(name, header, spec)
    return header


def _check_header_names(name: str, header: list[str], spec: FileSpec) -> None:
    problems: list[str] = []
    blanks = [str(i + 1) for i, column in enumerate(header) if not column]
    if blanks:
        problems.append(f"column(s) {', '.join(blanks)} have no name")
    seen: set[str] = set()
    duplicated = [c for c in header if c and (c in seen or seen.add(c))]  # type: ignore[func-returns-value]
    if duplicated:
        problems.append(f"duplicated column(s): {', '.join(sorted(set(duplicated)))}")
    too_long = [c for c in header if len(c.encode()) > MAX_IDENTIFIER_BYTES]
    if too_long:
        problems.append(f"column name(s) longer than {MAX_IDENTIFIER_BYTES} bytes: {', '.join(too_long)}")
    missing = [c for c in spec.required_columns if c not in header]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if not spec.allow_extra_columns:
        unknown = [c for c in header if c and c not in spec.known_columns]
        if unknown:
            problems.append(
                f"unknown column(s): {', '.join(unknown)} (expected: {', '.join(spec.known_columns)})"
            )
    if problems:
        raise IntakeError(f"file {name}: wrong header — " + "; ".join(problems))


def checked_table(upload: Mapping[str, Any]) -> str:
    """The typed, checked copy of an upload's staged rows that its workflow's `prepare` makes (in schema intake);
    the proposal model reads it by this name (the run value `checked_table`)."""
    return f"{upload['staged_table']}_checked"


def index_by_row(cur: psycopg2.extensions.cursor, table_name: str) -> None:
    """Index a checked table of intake by row number and analyse it, for the SQL checks and the proposal."""
    table = sql.Identifier("intake", table_name)
    cur.execute(sql.SQL("CREATE INDEX ON {} (row_number)").format(table))
    cur.execute(sql.SQL("ANALYZE {}").format(table))


def staged_table_name(upload: Upload) -> str:
    return f"stage_{re.sub(r'[^a-z0-9_]', '_', upload.kind.lower())}_{upload.upload_id}"


def drop_staged(cur: psycopg2.extensions.cursor, staged_table: str, *, derived_only: bool = False) -> None:
    """Drop an upload's staged rows and the tables derived from them (`<staged>_*`); the original file stays. With
    `derived_only`, the staged rows stay: validate starts over from them (an earlier attempt was cut short)."""
    cur.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'intake'"
        " AND ((tablename = %(t)s AND NOT %(derived_only)s) OR left(tablename, length(%(t)s) + 1) = %(t)s || '_')",
        {"t": staged_table, "derived_only": derived_only},
    )
    for (name,) in cur.fetchall():
        cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("intake", name)))


_COPY_LINE = re.compile(r"line (\d+)")


def stage(cur: psycopg2.extensions.cursor, upload: Upload, header: list[str],
          source: BinaryIO | None = None) -> tuple[str, int]:
    """COPY the file's rows (from `source`, else its archived copy) into `intake.<table>` (all text, plus
    row_number); return table and count."""
    table = staged_table_name(upload)
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header)
    # Unlogged: the original file is kept, so a crash loses nothing that cannot be staged again.
    cur.execute(
        sql.SQL("CREATE UNLOGGED TABLE intake.{} (row_number bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {})")
        .format(sql.Identifier(table), columns)
    )
    copy = sql.SQL("COPY intake.{} ({}) FROM STDIN WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in header)
    )
    cur.execute("SAVEPOINT before_copy")
    try:
        with nullcontext(source) if source is not None else upload.stored_path.open("rb") as handle:
            cur.copy_expert(copy.as_string(cur), handle, size=1 << 20)
    except psycopg2.DataError as exc:
        cur.execute("ROLLBACK TO SAVEPOINT before_copy")
        raise IntakeError(_explain_copy_error(upload.file_name, exc)) from exc
    cur.execute(sql.SQL("SELECT count(*) FROM intake.{}").format(sql.Identifier(table)))
    row_count = int(cur.fetchone()[0])
    if row_count == 0:
        raise IntakeError(f"file {upload.file_name} has a header but no rows")
    return table, row_count


def restage_if_lost(cur: psycopg2.extensions.cursor, upload: Mapping[str, Any]) -> bool:
    """Stage an upload's rows again from its archived original if a database crash emptied them; whether it did.

    Staged rows are in UNLOGGED tables (no write-ahead log to write), which PostgreSQL empties when it restarts after
    a crash: the table is there, its rows are not. (A table that is gone was dropped: the upload was proposed or
    refused, and is not staged again.) The original is read once, beneath the outbox, and must be byte for byte the
    file taken in (its size, then its sha256 as COPY reads it); the tables derived from the staged rows are dropped
    with them. Two attempts of one step take turns.
    """
    lock = f"benefitflow.staging:{upload['upload_id']}"
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
    if staged_rows_present(cur, upload["staged_table"]) is not False:  # all there; or gone, not emptied
        return False
    cur.execute("SELECT kind, plan_code, file_name, stored_path, sha256, size_bytes FROM intake.uploads"
                " WHERE upload_id = %s", (upload["upload_id"],))
    kind, plan_code, name, stored, sha256, size = cur.fetchone()
    refusal = (f"upload {upload['upload_id']}: its staged rows were lost when the database restarted, and its archived "
               f"original {stored} is not the file taken in (sha256 {sha256[:12]}…, {size:,} bytes): restore it from "
               "a backup, or hand the file in again")
    drop_staged(cur, upload["staged_table"])
    original = Upload(int(upload["upload_id"]), kind, plan_code, name, Path(stored), sha256, size)
    try:
        with file_store.open_in_outbox(stored, config.outbox()) as archived:
            if archived.size_bytes != size:
                raise IntakeError(refusal)
            read = _Hashing(archived.handle)
            _table, rows = stage(cur, original, list(upload["header"]), read)
    except file_store.InboxError as exc:
        raise IntakeError(f"{refusal} ({exc})") from exc
    if read.hexdigest() != sha256 or rows != upload["row_count"]:
        raise IntakeError(refusal)
    return True


def staged_rows_present(cur: psycopg2.extensions.cursor, staged_table: str) -> bool | None:
    """Whether an upload's staged table holds rows; None if there is no such table. One row read, not a count: a
    crash empties an UNLOGGED table whole, and the table may hold millions."""
    cur.execute("SELECT to_regclass(%s)", (f"intake.{staged_table}",))
    if cur.fetchone()[0] is None:
        return None
    cur.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier("intake", staged_table)))
    return bool(cur.fetchone()[0])


class _Hashing:
    """A file read through: the sha256 of what was read."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle, self._digest = handle, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._digest.update(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _explain_copy_error(file_name: str, exc: psycopg2.Error) -> str:
    context = (exc.diag.context or "") if exc.diag else ""
    match = _COPY_LINE.search(context)
    where = f"row {int(match.group(1)) - 1} (line {match.group(1)})" if match else "a row"
    primary = (exc.diag.message_primary if exc.diag else None) or str(exc).splitlines()[0]
    if "invalid byte sequence" in primary:
        return (
            f"file {file_name}, {where}: not valid UTF-8 ({primary}); save the file as UTF-8 "
            "(with or without BOM) — other encodings such as Latin-1 or Windows-1252 are not accepted"
        )
    if "extra data after last expected column" in primary:
        return f"file {file_name}, {where}: more values than the header has columns"
    if "missing data for column" in primary:
        return f"file {file_name}, {where}: fewer values than the header has columns ({primary})"
    if "unterminated CSV quoted field" in primary:
        return f"file {file_name}, {where}: a quoted value is never closed"
    return f"file {file_name}, {where}: not a valid CSV row ({primary})"


def set_status(
    cur: psycopg2.extensions.cursor, upload_id: int, status: str, *, message: str | None = None, **counts: object
) -> None:
    """Move the upload to `status`; keyword arguments update the matching count/report columns."""
    allowed = {"staged_table", "row_count", "valid_row_count", "invalid_row_count", "error_report_path"}
    unknown = set(counts) - allowed
    if unknown:
        raise ValueError(f"not upload columns: {sorted(unknown)}")
    assignments = [sql.SQL("status = %s"), sql.SQL("message = coalesce(%s, message)"), sql.SQL("updated_at = now()")]
    values: list[object] = [status, message]
    for column, value in counts.items():
        assignments.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
        values.append(value)
    cur.execute(
        # A superseded upload stays so: nothing decided later about its run applies to it.
        sql.SQL("UPDATE intake.uploads SET {} WHERE upload_id = %s AND status <> 'SUPERSEDED'").format(
            sql.SQL(", ").join(assignments)),
        [*values, upload_id],
    )


# -- requests: operations asked for from a trigger form (no file, or a file as one parameter) --
def register_request(
    cur: psycopg2.extensions.cursor, *, kind: str, plan_code: str, parameters: dict[str, object], user: str,
    dag_id: str, run_id: str,
) -> int:
    """Record what the maker asked for, as given; return the request id (superseding the run's earlier one)."""
    supersede_run_inputs(cur, "requests", dag_id, run_id)
    cur.execute(
        "INSERT INTO intake.requests (kind, plan_code, parameters, requested_by, dag_id, run_id)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING request_id",
        (kind, plan_code, json.dumps(parameters, default=str), user, dag_id, run_id),
    )
    request_id = int(cur.fetchone()[0])
    audit.record(cur, actor=user, action="request.received", object_type="request", object_id=request_id,
                 outcome="RECEIVED", details={"kind": kind, "plan": plan_code, "parameters": parameters})
    return request_id


def select_again(cur: psycopg2.extensions.cursor, request_id: int) -> None:
    """Let go of what an earlier attempt of validate selected for the request, before selecting again (that attempt
    was cut short after its transaction went through, or a clear runs it again); two attempts at once take turns
    (the request's row)."""
    cur.execute("SELECT FROM intake.requests WHERE request_id = %s FOR UPDATE", (request_id,))
    cur.execute("DELETE FROM intake.request_selection WHERE request_id = %s", (request_id,))


def note_selection(cur: psycopg2.extensions.cursor, request_id: int) -> None:
    """Record whether validate selected the request's set into intake.request_selection (see `selection_lost`)."""
    cur.execute("UPDATE intake.requests SET selection_made = EXISTS (SELECT FROM intake.request_selection"
                " WHERE request_id = %(r)s) WHERE request_id = %(r)s", {"r": request_id})


def selection_lost(cur: psycopg2.extensions.cursor, request_id: int) -> bool:
    """Whether the set validate selected for a request not yet proposed is gone: intake.request_selection is UNLOGGED,
    and PostgreSQL empties it when it restarts after a crash. One row read, not a count."""
    cur.execute("SELECT status = 'RECEIVED' AND selection_made AND NOT EXISTS (SELECT FROM intake.request_selection"
                " WHERE request_id = %(r)s) FROM intake.requests WHERE request_id = %(r)s", {"r": request_id})
    return bool(cur.fetchone()[0])


def set_request_status(
    cur: psycopg2.extensions.cursor, request_id: int, status: str, *, message: str | None = None,
    document: object | None = None,
) -> None:
    cur.execute(
        "UPDATE intake.requests SET status = %s, message = coalesce(%s, message),"
        " document = coalesce(%s::jsonb, document), updated_at = now()"
        " WHERE request_id = %s AND status <> 'SUPERSEDED'",
        (status, message, None if document is None else json.dumps(document, default=str), request_id),
    )
