"""A file handed in over HTTP: streamed into the inbox under the platform's name, refused (and removed) early."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from benefitflow.platform.file_receiver import Received, ReceiveError, inbox_name_for, receive, sniff

BOUNDARY = "----benefitflow-test"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """(field name, file name or None, value) as a browser sends them."""
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


async def chunks(body: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):  # small pieces: boundaries and headers cut anywhere
        yield body[start:start + size]


def take(tmp_path: Path, body: bytes, limit: int = 10_000) -> Received:
    return asyncio.run(receive(chunks(body), CONTENT_TYPE, target_dir=tmp_path, dag_id="platform_selftest",
                               limit=limit))


def test_the_file_is_streamed_into_the_inbox_with_its_hash_and_the_options_kept(tmp_path: Path) -> None:
    csv = b"code,label,amount\nA,first,1.00\nB,second,2.00\n"
    received = take(tmp_path, multipart([("on_invalid_rows", None, b"reject_file"),
                                         ("file", "C:\\Users\\me\\My File.csv", csv), ("mode", None, b"create")]))
    assert received.fields == {"on_invalid_rows": "reject_file", "mode": "create"}
    assert received.client_name == "My File.csv"  # a Windows path is cut to its last part (python-multipart)
    assert received.inbox_name.startswith("web-platform_selftest-") and received.inbox_name.endswith("-My_File.csv")
    stored = tmp_path / received.inbox_name
    assert stored.read_bytes() == csv and received.size_bytes == len(csv)
    assert received.sha256 == hashlib.sha256(csv).hexdigest()
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o640  # personal data: never readable by everyone
    assert os.listdir(tmp_path) == [received.inbox_name]


@pytest.mark.parametrize(("parts", "limit", "status", "message"), [
    ([("file", "a.csv", b"")], 10_000, 400, "the file is empty"),
    ([("file", "a.csv", b"code,label\n" + b"A,x\n" * 100)], 200, 413, "larger than 200 bytes"),
    ([("file", "a.csv", b"PK\x03\x04\x00\x00binary")], 10_000, 415, "not CSV text"),
    ([("file", "a.csv", b"one line without a separator\n")], 10_000, 415, "no comma"),
    ([("mode", None, b"create")], 10_000, 400, "no file"),
    ([("file", "a.csv", b"a,b\n1,2\n"), ("file", "b.csv", b"a,b\n3,4\n")], 10_000, 400, "one file at a time"),
    ([("note", None, b"x" * 5000), ("file", "a.csv", b"a,b\n")], 10_000, 400, "too long"),
])
def test_a_refused_file_leaves_nothing_behind(tmp_path: Path, parts, limit: int, status: int, message: str) -> None:
    with pytest.raises(ReceiveError, match=message) as refused:
        take(tmp_path, multipart(parts), limit=limit)
    assert refused.value.status == status
    assert os.listdir(tmp_path) == []


def test_only_multipart_is_taken(tmp_path: Path) -> None:
    with pytest.raises(ReceiveError, match="multipart/form-data") as refused:
        asyncio.run(receive(chunks(b"code,label\n"), "text/csv", target_dir=tmp_path, dag_id="x", limit=100))
    assert refused.value.status == 415


@pytest.mark.parametrize(("head", "refusal"), [
    (b"\xef\xbb\xbfcode,label\nA,b\n", None),  # Excel's "CSV UTF-8" starts with a byte-order mark
    ("name,place\nJos\xe9,S\xe3o Tom\xe9\n".encode(), None),
    ("name,place\nJos\xe9".encode()[:-1], None),  # a character cut where the sniffing stops is no error
    ("name,place\nJos\xe9,x\n".encode("latin-1"), "not UTF-8"),
    (b"name;place\nA;b\n", "no comma"),
    (b"a,b\n\x00\x01", "binary"),
])
def test_sniffing_tells_csv_text_from_anything_else(head: bytes, refusal: str | None) -> None:
    found = sniff(head)
    assert (found is None) if refusal is None else (found is not None and refusal in found)


def test_the_platform_chooses_the_name_whatever_the_client_sent() -> None:
    for sent in ("../../etc/passwd", "/abs/path/x.csv", "..", "", "a\x00b.csv", "ünïcode name.CSV"):
        name = inbox_name_for("individuals_import", sent)
        assert "/" not in name and "\x00" not in name and name.startswith("web-individuals_import-")
        assert name.endswith(".csv") and ".." not in name


@pytest.mark.parametrize(("body", "message"), [
    (multipart([("file", "a.csv", b"PK\x03\x04 a zip, cut off")]).rsplit(b"\r\n--", 1)[0], "ended before the form"),
    (multipart([("mode", None, b"create"), ("mode", None, b"update"), ("file", "a.csv", b"a,b\n")]), "each option once"),
    (multipart([("attachment", "a.csv", b"a,b\n")]), "one file, in a field named 'file'"),
    (multipart([("", None, b"x"), ("file", "a.csv", b"a,b\n")]), "not the Upload page's"),
    (multipart([(f"f{n}", None, b"x" * 4000) for n in range(19)] + [("file", "a.csv", b"a,b\n")]), "larger than"),
    (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
     + b"X-Header: " + b"y" * 10_000 + b"\r\n\r\na,b\r\n--" + BOUNDARY.encode() + b"--\r\n", "could not be read"),
])
def test_a_form_that_is_not_the_pages_is_refused_and_leaves_nothing(tmp_path: Path, body: bytes, message: str) -> None:
    with pytest.raises(ReceiveError, match=message):
        take(tmp_path, body, limit=200 if message == "larger than" else 10_000)
    assert os.listdir(tmp_path) == []


def test_a_sender_that_stops_sending_is_cut_off(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("benefitflow.platform.file_receiver.IDLE_SECONDS", 0.2)

    async def stalling() -> AsyncIterator[bytes]:
        yield multipart([("file", "a.csv", b"a,b\n1,2\n" * 10)])[:120]
        await asyncio.sleep(5)

    with pytest.raises(ReceiveError, match="nothing was sent") as refused:
        asyncio.run(receive(stalling(), CONTENT_TYPE, target_dir=tmp_path, dag_id="x", limit=10_000))
    assert refused.value.status == 408 and os.listdir(tmp_path) == []


def test_a_whole_file_is_checked_to_its_last_byte() -> None:
    cut = "name,place\nJos\xe9".encode()[:-1]
    assert sniff(cut) is None  # the looking stopped there: the rest of the character may follow
    assert "not UTF-8" in (sniff(cut, complete=True) or "")
