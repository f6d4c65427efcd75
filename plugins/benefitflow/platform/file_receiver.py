"""A CSV file handed in over HTTP (multipart/form-data), streamed into the inbox as it arrives.

The body is parsed as it comes (python-multipart's streaming parser): the file's bytes go straight
into a new file in the inbox, under a name the platform chooses, hashed on the way, and never held in
memory or first spooled elsewhere. The rest of the form (a workflow's options) is kept as text. The
transfer stops, and what was written is removed, as soon as the file is larger than the limit, or its
first bytes are not CSV text (UTF-8, no NUL byte, a header line with a comma).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import pwd
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from benefitflow.core import file_store
from benefitflow.core.errors import UserError
from benefitflow.platform.system_users import TASK_USER_VARIABLE
from benefitflow.workflows.inputs import WEB_FILE_PREFIX

SNIFFED_BYTES = 64 << 10  # what is looked at before the rest is taken: a header line and the first rows
MAX_FIELD_BYTES = 4 << 10  # an option's value (a plan code, a payroll name): never large
MAX_PARTS = 20  # the file and a workflow's few options
FORM_OVERHEAD = 64 << 10  # the form around the file: its boundaries, headers and option fields
IDLE_SECONDS = 60  # a sender that stops sending for this long is cut off (and what it sent removed)
FILE_FIELD = "file"


class ReceiveError(UserError):
    """The file (or the form around it) is refused; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Received:
    """The file as it is now in the inbox, and the form's other fields."""

    inbox_name: str  # the name the platform gave it: what the workflow's `file` parameter names
    client_name: str  # the name the browser sent, for messages only (never used as a path)
    sha256: str
    size_bytes: int
    fields: dict[str, str] = field(default_factory=dict)


def inbox_name_for(dag_id: str, client_name: str, now: datetime | None = None) -> str:
    """web-<dag>-<UTC time>-<random>-<the client's name, reduced to safe characters>.csv: no path, no clash."""
    stem = Path(client_name.replace("\\", "/").rsplit("/", 1)[-1]).stem
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:60] or "file"
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{WEB_FILE_PREFIX}{dag_id}-{moment}-{uuid.uuid4().hex[:8]}-{safe}.csv"


def sniff(head: bytes, *, complete: bool = False) -> str | None:
    """Why the first bytes of a file (`complete`: the whole file) are not CSV text; None when they are."""
    if b"\x00" in head:
        return "the file is not CSV text (it holds binary data: a spreadsheet, a zip or an image?); save it as CSV"
    text = head.removeprefix(b"\xef\xbb\xbf")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(text) - 3:  # a character cut where the looking stopped is no error
            return ("the file is not UTF-8 text (byte "
                    f"{exc.start + 1}); save it as CSV UTF-8")
        decoded = text[:exc.start].decode("utf-8")
    header = decoded.splitlines()[0] if decoded else ""
    if "," not in header:
        return "the file is not CSV: its first line has no comma (a header of column names separated by commas)"
    return None


class _Receiving:
    """The callbacks of one multipart body: which part is being read, and where its bytes go."""

    def __init__(self, target_dir: Path, dag_id: str, limit: int) -> None:
        self.target_dir, self.dag_id, self.limit = target_dir, dag_id, limit
        self.fields: dict[str, str] = {}
        self.header_field, self.header_value = b"", b""
        self.headers: dict[bytes, bytes] = {}
        self.part_name: str | None = None
        self.part_file: str | None = None
        self.value = bytearray()
        self.handle: BinaryIO | None = None  # open while the file's part is read
        self.path: Path | None = None
        self.client_name = ""
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = bytearray()
        self.sniffed = False
        self.files = 0
        self.parts = 0
        self.ended = False

    # -- python-multipart's callbacks ------------------------------------------------------------
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ReceiveError("the form has too many fields")
        self.headers, self.part_name, self.part_file, self.value = {}, None, None, bytearray()

    def on_end(self) -> None:
        self.ended = True

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.part_name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self.part_file = None if filename is None else filename.decode("utf-8", "replace")
        if self.part_name == FILE_FIELD and self.part_file is not None:
            self.files += 1
            if self.files > 1:
                raise ReceiveError("hand in one file at a time")
            self.client_name = self.part_file
            self.path = self.target_dir / inbox_name_for(self.dag_id, self.part_file)
            self.handle = file_store.new_binary(self.path)
            _readable_by_tasks(self.handle)
        elif self.part_file is not None or not self.part_name or self.part_name in self.fields:
            raise ReceiveError("the form is not the Upload page's: one file, in a field named 'file', and each "
                               "option once")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.handle is None or self.handle.closed:
            self.value += chunk
            if len(self.value) > MAX_FIELD_BYTES:
                raise ReceiveError(f"the form field {self.part_name!r} is too long")
            return
        self.size += len(chunk)
        if self.size > self.limit:
            raise ReceiveError(too_large(self.limit), status=413)
        if not self.sniffed:
            self.head += chunk
            if len(self.head) >= SNIFFED_BYTES:
                self._sniff()
        self.digest.update(chunk)
        try:
            self.handle.write(chunk)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ReceiveError("the inbox is full: tell the operators", status=507) from exc
            raise

    def on_part_end(self) -> None:
        if self.handle is not None and not self.handle.closed:
            if not self.sniffed:
                self._sniff(complete=True)
            self.handle.close()
        elif self.part_name and self.part_file is None:
            self.fields[self.part_name] = self.value.decode("utf-8", "replace")

    def _sniff(self, *, complete: bool = False) -> None:
        self.sniffed = True
        if self.size == 0:
            raise ReceiveError("the file is empty: a CSV file has at least its header line")
        if refusal := sniff(bytes(self.head[:SNIFFED_BYTES]), complete=complete):
            raise ReceiveError(refusal, status=415)

    def close(self) -> None:
        if self.handle is not None and not self.handle.closed:
            self.handle.close()

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def receive(body: AsyncIterator[bytes], content_type: str, *, target_dir: Path, dag_id: str,
                  limit: int) -> Received:
    """Read a multipart body; its `file` part streamed into `target_dir`. Nothing is left behind if refused."""
    kind, options = parse_options_header(content_type)
    if kind.lower() != b"multipart/form-data" or not options.get(b"boundary"):
        raise ReceiveError("send the file as multipart/form-data, in a field named 'file'", status=415)
    receiving = _Receiving(target_dir, dag_id, limit)
    callbacks = {name: getattr(receiving, name) for name in (
        "on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value", "on_header_end",
        "on_headers_finished", "on_end")}
    read = 0
    chunks = aiter(body)
    try:
        try:
            parser = MultipartParser(options[b"boundary"], callbacks)  # type: ignore[arg-type]
            while not receiving.ended:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), IDLE_SECONDS)
                except StopAsyncIteration:
                    break
                read += len(chunk)
                if read > limit + FORM_OVERHEAD:
                    raise ReceiveError(too_large(limit), status=413)
                # Parsing and writing off the event loop: the api-server serves others meanwhile.
                await asyncio.to_thread(parser.write, chunk)
        except ReceiveError:
            raise
        except TimeoutError as exc:
            raise ReceiveError(f"nothing was sent for {IDLE_SECONDS} s: the upload was cut off; send it again",
                               status=408) from exc
        except (MultipartParseError, ValueError) as exc:
            raise ReceiveError(f"the form could not be read ({exc}); send the file from the Upload page") from exc
        if not receiving.ended:
            raise ReceiveError("the upload ended before the form did (cut off?); send it again")
        if receiving.path is None:
            raise ReceiveError("no file: choose a CSV file (a field named 'file')")
        receiving.close()
    except BaseException:
        receiving.discard()
        raise
    return Received(inbox_name=receiving.path.name, client_name=receiving.client_name,
                    sha256=receiving.digest.hexdigest(), size_bytes=receiving.size, fields=receiving.fields)


def too_large(limit: int) -> str:
    """What a file over the limit is told, wherever it is refused (the page, before sending; the server)."""
    return (f"the file is larger than {limit:,} bytes, the largest this page takes (BENEFITFLOW_WEB_UPLOAD_MAX_BYTES); "
            "split it")


def _readable_by_tasks(handle: BinaryIO) -> None:
    """Started as root, the tasks read the inbox as the task user: the file is its group's, mode 0640 kept."""
    task_user = os.environ.get(TASK_USER_VARIABLE)
    if task_user and os.geteuid() == 0:
        os.fchown(handle.fileno(), -1, pwd.getpwnam(task_user).pw_gid)
