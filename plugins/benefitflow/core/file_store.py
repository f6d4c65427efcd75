"""Files users hand in (the inbox) and files the platform writes (the outbox).

A file named in a trigger form is opened once, beneath the inbox, following no symbolic link
anywhere on its path; the descriptor is then checked (a regular file with one link, on the
inbox's device) and is the only way the platform reads it. A name checked and then opened
again could meanwhile have become a link to any file the worker can read.

Files written to the outbox hold personal data: they are created with their final mode
(never written first and restricted afterwards), and never over an existing file or link.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import stat
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from psycopg2 import sql

from benefitflow.core.errors import UserError

MAX_NAME_BYTES = 200  # the archived copy adds "<upload id>-" and must stay within the file system's 255
PERSONAL_FILE_MODE = 0o640  # the platform's group (a download service, a backup) reads; nobody else
SECRET_FILE_MODE = 0o600

# openat2's number in the generic and x86 syscall tables; elsewhere (alpha, mips) it differs: walk instead.
_SYS_OPENAT2 = 437 if platform.machine() in ("x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x") else None
# A kernel without openat2 says ENOSYS; a sandbox (seccomp) may say EPERM; an old ABI EINVAL or E2BIG.
_OPENAT2_UNAVAILABLE = (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
# Non-blocking: opening a FIFO for reading would otherwise wait for a writer, for ever.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class InboxError(UserError):
    """A file name or file the inbox refuses; the message names the file, for the user."""


class OutboxFull(OSError):
    """The file system a file was being written to is full (or its quota spent): the partly written file is gone."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ENOSPC, f"no room left to write {path.name} in {path.parent} (its file system is full): "
                         "nothing was kept of it; free space there and run this again")


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@dataclass(frozen=True)
class HandedIn:
    """A file opened in the inbox: its name as the user gave it, and the one descriptor to read it through."""

    name: str  # the last component, for messages and the archived copy's name
    handle: BinaryIO
    size_bytes: int  # as it was when opened: what is read, and no more
    modified_ns: int

    def check_unchanged(self) -> None:
        """Refuse a file written to while it was read (what was read may be half of either version)."""
        now = os.fstat(self.handle.fileno())
        if (now.st_size, now.st_mtime_ns) != (self.size_bytes, self.modified_ns):
            raise InboxError(f"file {self.name!r} changed while it was read ({self.size_bytes:,} bytes when opened, "
                             f"{now.st_size:,} now): hand it in once it is complete")


@contextmanager
def open_in_inbox(raw_path: str, inbox: Path) -> Iterator[HandedIn]:
    """Open `raw_path` (relative to the inbox, or absolute inside it) once and safely; refuse anything else."""
    relative = _relative_name(raw_path, inbox)
    inbox_fd = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_beneath(inbox_fd, relative, raw_path)
        try:
            opened = _check_descriptor(fd, os.fstat(inbox_fd).st_dev, raw_path)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.close(inbox_fd)
    with os.fdopen(fd, "rb") as handle:
        yield HandedIn(name=relative.rsplit("/", 1)[-1], handle=handle, size_bytes=opened.st_size,
                       modified_ns=opened.st_mtime_ns)


def open_in_outbox(raw_path: str, outbox: Path) -> AbstractContextManager[HandedIn]:
    """A file the platform wrote, opened as an inbox file is: beneath the outbox, no link followed, a regular file
    with one link. The task user owns the outbox, so a link could stand where a report was."""
    return open_in_inbox(raw_path, outbox)


def _relative_name(raw_path: str, inbox: Path) -> str:
    """The path below the inbox, checked as text: no NUL, no `..`, nothing outside."""
    if not raw_path or not raw_path.strip():
        raise InboxError("no file given: name a file in the inbox")
    if "\x00" in raw_path:
        raise InboxError(f"file {raw_path!r}: the name contains a NUL character")
    if os.path.isabs(raw_path):
        normal = os.path.normpath(raw_path)
        for root in dict.fromkeys((os.path.normpath(inbox), str(inbox.resolve()))):
            if normal.startswith(root.rstrip("/") + "/"):
                raw_relative = normal[len(root.rstrip("/")) + 1:]
                break
        else:
            raise InboxError(f"file {raw_path!r} is outside the inbox {inbox}: only files in the inbox are accepted")
    else:
        raw_relative = raw_path
    parts = [part for part in raw_relative.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise InboxError(f"file {raw_path!r} is outside the inbox {inbox}: only files in the inbox are accepted")
    if any(len(os.fsencode(part)) > MAX_NAME_BYTES for part in parts):
        raise InboxError(f"file {raw_path[:80]!r}…: a name in the path is longer than {MAX_NAME_BYTES} bytes")
    return "/".join(parts)


def _open_beneath(inbox_fd: int, relative: str, raw_path: str) -> int:
    """A descriptor for `relative` under the inbox, no link followed: openat2 where the kernel has it."""
    try:
        return _openat2(inbox_fd, relative)
    except OSError as exc:
        if exc.errno not in _OPENAT2_UNAVAILABLE:
            raise _refusal(exc, raw_path) from exc
    try:
        return _open_walking(inbox_fd, relative)
    except OSError as exc:
        raise _refusal(exc, raw_path) from exc


def _openat2(inbox_fd: int, relative: str) -> int:
    if _SYS_OPENAT2 is None:
        raise OSError(errno.ENOSYS, "openat2's number is not known on this architecture", relative)
    how = _OpenHow(flags=_OPEN_FLAGS, mode=0,
                   resolve=_RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(inbox_fd), ctypes.c_char_p(os.fsencode(relative)),
                      ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), relative)
    return int(fd)


def _open_walking(inbox_fd: int, relative: str) -> int:
    """Kernels before 5.6: one component at a time, each opened with O_NOFOLLOW relative to the last."""
    *folders, last = relative.split("/")
    current = os.dup(inbox_fd)
    try:
        for folder in folders:
            following = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = following
        return os.open(last, _OPEN_FLAGS, dir_fd=current)
    finally:
        os.close(current)


def _refusal(exc: OSError, raw_path: str) -> InboxError:
    if exc.errno in (errno.ELOOP, errno.EXDEV):
        return InboxError(f"file {raw_path!r} is, or lies under, a symbolic link: only regular files in the inbox "
                          "are accepted, not links")
    if exc.errno == errno.ENOTDIR:
        return InboxError(f"file {raw_path!r}: a part of its path is a link or a file, not a folder of the inbox")
    if exc.errno == errno.ENOENT:
        return InboxError(f"file {raw_path!r} does not exist in the inbox")
    if exc.errno == errno.EACCES:
        return InboxError(f"file {raw_path!r} cannot be read (permission denied): the platform's tasks read the "
                          "inbox as a user of their own (benefitflow-task when started as root); let it read the file")
    return InboxError(f"file {raw_path!r} cannot be opened ({exc.strerror})")


def _check_descriptor(fd: int, inbox_device: int, raw_path: str) -> os.stat_result:
    """Refuse anything but a regular file with one link on the inbox's device; what fstat said of it."""
    found = os.fstat(fd)
    if stat.S_ISDIR(found.st_mode):
        raise InboxError(f"file {raw_path!r} is a directory: name a file in it")
    if not stat.S_ISREG(found.st_mode):
        raise InboxError(f"file {raw_path!r} is not a regular file (a FIFO, socket or device): only regular files "
                         "are accepted")
    if found.st_nlink != 1:
        raise InboxError(f"file {raw_path!r} has {found.st_nlink} hard links: a file in the inbox must have "
                         "exactly one (a hard link could be another file's contents); copy it instead")
    if found.st_dev != inbox_device:
        raise InboxError(f"file {raw_path!r} is on another file system than the inbox (a mount point)")
    return found


# -- files the platform writes ------------------------------------------------------------
def _created(path: Path, mode: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    os.fchmod(fd, mode)  # whatever the umask: the mode is part of the contract
    return fd


def new_binary(path: Path, mode: int = PERSONAL_FILE_MODE) -> BinaryIO:
    """A new file at `path`, created with `mode` (never an existing file, never a link); the caller closes it."""
    return os.fdopen(_created(path, mode), "wb")


@contextmanager
def created_binary(path: Path, mode: int = PERSONAL_FILE_MODE) -> Iterator[BinaryIO]:
    """As `new_binary`, closed when the block ends; a file system that fills up on the way is `OutboxFull` (and the
    partly written file is removed)."""
    with _room_for(path), new_binary(path, mode) as handle:
        yield handle


@contextmanager
def created_text(path: Path, mode: int = PERSONAL_FILE_MODE) -> Iterator[TextIO]:
    """As `created_binary`, for CSV and JSON text (UTF-8, no newline translation)."""
    with _room_for(path), os.fdopen(_created(path, mode), "w", encoding="utf-8", newline="") as handle:
        yield handle


@contextmanager
def _room_for(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_ROOM or isinstance(exc, OutboxFull):
            raise
        path.unlink(missing_ok=True)
        raise OutboxFull(path) from exc


@contextmanager
def replaced_text(path: Path, mode: int = PERSONAL_FILE_MODE) -> Iterator[TextIO]:
    """Write `path` anew: a new file created with `mode`, put in place of any earlier one once complete."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")
    try:
        with created_text(temporary, mode) as handle:
            yield handle
        os.replace(temporary, path)
    except OutboxFull as exc:
        raise OutboxFull(path) from exc
    finally:
        temporary.unlink(missing_ok=True)


def write_secret(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only from the moment it exists."""
    with replaced_text(path, SECRET_FILE_MODE) as handle:
        handle.write(text)


def copy_and_hash(source: BinaryIO, target: BinaryIO, limit: int | None = None) -> tuple[str, int]:
    """Copy what is left in `source` (at most `limit` bytes) to `target` in one pass; its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(1 << 20 if limit is None else min(1 << 20, limit - size)):
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


# Types whose values a spreadsheet never reads as a formula: everything else is text and is neutralised.
_NOT_TEXT = frozenset({"integer", "number", "date", "boolean", "uuid"})


def spreadsheet_safe(expression: sql.Composable, type_: str = "string") -> sql.Composable:
    """`expression` as a CSV cell no spreadsheet evaluates (`intake.spreadsheet_safe`, migration 018)."""
    if type_ in _NOT_TEXT:
        return expression
    return sql.SQL("intake.spreadsheet_safe(({})::text)").format(expression)
