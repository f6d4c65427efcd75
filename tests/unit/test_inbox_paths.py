"""Files named in trigger forms are opened once, beneath the inbox, and only if they are plain files."""

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benefitflow.core import file_store
from benefitflow.core.file_store import InboxError, open_in_inbox


@pytest.fixture(params=["openat2", "component walk"])
def opening(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of opening: openat2, and the O_NOFOLLOW walk used where the kernel has no openat2."""
    if request.param == "component walk":
        def no_openat2(inbox_fd: int, relative: str) -> int:
            raise OSError(errno.ENOSYS, "no openat2 here")
        monkeypatch.setattr(file_store, "_openat2", no_openat2)
    return str(request.param)


@pytest.fixture
def inbox(tmp_path: Path, opening: str) -> Path:
    box = tmp_path / "inbox"
    (box / "sub").mkdir(parents=True)
    (box / "ok.csv").write_text("a\n1\n")
    (box / "sub" / "nested.csv").write_text("a\n2\n")
    (tmp_path / "secret.csv").write_text("password\nhunter2\n")
    (box / "link.csv").symlink_to(tmp_path / "secret.csv")
    (box / "link-inside.csv").symlink_to(box / "ok.csv")
    (box / "linked-folder").symlink_to(tmp_path)
    os.link(tmp_path / "secret.csv", box / "hard.csv")
    os.mkfifo(box / "pipe.csv")
    return box


def read(raw: str, inbox: Path) -> tuple[str, bytes]:
    with open_in_inbox(raw, inbox) as handed_in:
        return handed_in.name, handed_in.handle.read()


def test_a_file_in_the_inbox_is_read_by_name_subpath_or_absolute_path(inbox: Path) -> None:
    assert read("ok.csv", inbox) == ("ok.csv", b"a\n1\n")
    assert read("sub/nested.csv", inbox) == ("nested.csv", b"a\n2\n")
    assert read("./sub//nested.csv", inbox) == ("nested.csv", b"a\n2\n")
    assert read(str(inbox / "ok.csv"), inbox) == ("ok.csv", b"a\n1\n")


@pytest.mark.parametrize("raw", ["../secret.csv", "sub/../../secret.csv", "sub/../ok.csv", "/etc/passwd", "/", ".."])
def test_paths_leaving_the_inbox_or_climbing_are_refused(inbox: Path, raw: str) -> None:
    with pytest.raises(InboxError, match="outside the inbox"):
        read(raw, inbox)


@pytest.mark.parametrize("raw", ["link.csv", "link-inside.csv", "linked-folder/secret.csv"])
def test_symbolic_links_are_refused_wherever_they_are_on_the_path(inbox: Path, raw: str) -> None:
    with pytest.raises(InboxError, match=r"symbolic link|link or a file, not a folder") as refused:
        read(raw, inbox)
    assert raw in str(refused.value)


def test_a_hard_link_is_refused(inbox: Path) -> None:
    with pytest.raises(InboxError, match="'hard.csv' has 2 hard links"):
        read("hard.csv", inbox)


def test_a_fifo_is_refused_without_waiting_for_a_writer(inbox: Path) -> None:
    with pytest.raises(InboxError, match="'pipe.csv' is not a regular file"):
        read("pipe.csv", inbox)


def test_a_directory_is_refused(inbox: Path) -> None:
    with pytest.raises(InboxError, match="'sub' is a directory"):
        read("sub", inbox)


@pytest.mark.parametrize("raw", ["", "   ", "missing.csv", "sub/missing.csv"])
def test_missing_or_empty_names_are_refused(inbox: Path, raw: str) -> None:
    with pytest.raises(InboxError, match="no file given|does not exist"):
        read(raw, inbox)


def test_a_nul_byte_in_the_name_is_refused(inbox: Path) -> None:
    with pytest.raises(InboxError, match="NUL"):
        read("ok.csv\x00.txt", inbox)


def test_a_file_swapped_for_a_link_after_the_name_was_checked_is_refused(
        inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race an attacker with write access to the inbox runs: the name checks pass on a plain file,
    which becomes a link to a secret before the open."""
    opened = file_store._open_beneath

    def swapped_first(inbox_fd: int, relative: str, raw_path: str) -> int:
        (inbox / relative).unlink()
        (inbox / relative).symlink_to(inbox.parent / "secret.csv")
        return opened(inbox_fd, relative, raw_path)

    monkeypatch.setattr(file_store, "_open_beneath", swapped_first)
    with pytest.raises(InboxError, match="symbolic link"):
        read("ok.csv", inbox)


def test_a_file_swapped_after_it_was_opened_is_still_read_from_what_was_opened(inbox: Path) -> None:
    with open_in_inbox("ok.csv", inbox) as handed_in:
        (inbox / "ok.csv").unlink()
        (inbox / "ok.csv").symlink_to(inbox.parent / "secret.csv")
        assert handed_in.handle.read() == b"a\n1\n"


@pytest.fixture
def umask_wide_open() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_created_files_have_their_mode_from_the_start_and_never_replace_anything(
        tmp_path: Path, umask_wide_open: None) -> None:
    with file_store.created_text(tmp_path / "out" / "report.csv") as handle:
        assert (tmp_path / "out" / "report.csv").stat().st_mode & 0o777 == 0o640
        handle.write("a\n")
    (tmp_path / "target").write_text("x")
    (tmp_path / "link.csv").symlink_to(tmp_path / "target")
    for existing in ("out/report.csv", "link.csv"):
        with pytest.raises(FileExistsError), file_store.created_binary(tmp_path / existing):
            pass
    assert (tmp_path / "target").read_text() == "x"
    file_store.write_secret(tmp_path / "secrets.json", "{}")
    file_store.write_secret(tmp_path / "secrets.json", '{"a": 1}')
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets.json").read_text() == '{"a": 1}'


def test_a_name_too_long_for_the_archive_is_refused_before_anything_is_opened(inbox: Path) -> None:
    with pytest.raises(InboxError, match="longer than 200 bytes"):
        read("x" * 201 + ".csv", inbox)


def test_a_file_written_to_while_it_is_read_is_refused(inbox: Path) -> None:
    with open_in_inbox("ok.csv", inbox) as handed_in:
        assert handed_in.size_bytes == 4
        handed_in.check_unchanged()
        with (inbox / "ok.csv").open("ab") as writer:  # someone goes on writing the file
            writer.write(b"2\n" * 1000)
        with pytest.raises(InboxError, match="changed while it was read"):
            handed_in.check_unchanged()

