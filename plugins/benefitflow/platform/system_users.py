"""The unprivileged system users the platform runs parts of itself as, when it is started as root.

PostgreSQL refuses to run as root and runs as its own system user (the one-machine stack's
`benefitflow_dev/postgres.py`). Task processes run as
`TASK_USER` (`task_secrets.py` switches to it before the DAG file is parsed): task code — and dbt, GX or
a crafted input that makes them read something — cannot read what only the services may
(`.local/secrets.json`, `airflow.cfg`, the database's files, the services' logs and processes), nor
write the code the services run (the DAG files, the plugins, the environments). It reads the inbox,
the code and the environments, and writes the outbox and its own temporary folders.
Started as another user, everything runs as that user, and none of this applies.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import stat
import struct
import subprocess
import sys
from pathlib import Path

TASK_USER = "benefitflow-task"
# What a task process must still be able to import once it is the task user: its standard library, and the
# platform's code (the environments are in the project, readable).
RUNTIME_CHECK = "import encodings.idna, json, csv, decimal, benefitflow.core.config"

PR_SET_NO_NEW_PRIVS = 38
# A POSIX access ACL, as the kernel keeps it in the system.posix_acl_access attribute (<linux/posix_acl_xattr.h>).
ACL_XATTR, ACL_VERSION, ACL_NO_ID = "system.posix_acl_access", 2, 0xFFFFFFFF
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


# The system user a task process runs as (set when the services run as root).
TASK_USER_VARIABLE = "BENEFITFLOW_TASK_USER"


class TaskUserError(RuntimeError):
    pass


def running_as_root() -> bool:
    return os.geteuid() == 0


def ensure(name: str) -> pwd.struct_passwd:
    """The system user `name`, created (no home, no login shell) when it does not exist yet."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin",
                        name], check=True)
        return pwd.getpwnam(name)


def give_tree(root: Path, user: pwd.struct_passwd) -> None:
    """Make `root` and everything under it `user`'s, following no link (the task user can put links and swap
    folders in the outbox while this runs; each name is changed relative to its folder's descriptor)."""
    owner = (user.pw_uid, user.pw_gid)
    os.chown(root, *owner, follow_symlinks=False)
    for _, folders, files, folder_fd in os.fwalk(root, follow_symlinks=False):
        for name in [*folders, *files]:
            try:
                status = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
                if (status.st_uid, status.st_gid) != owner:
                    os.chown(name, *owner, dir_fd=folder_fd, follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile
                continue


def share_with_tasks(path: Path, user: pwd.struct_passwd) -> None:
    """A file of root's that task processes must read (a signing key): 0640, the task user's group."""
    os.chown(path, 0, user.pw_gid, follow_symlinks=False)
    os.chmod(path, 0o640, follow_symlinks=False)


def prepare_task_user(project_root: Path) -> pwd.struct_passwd:
    """The task user, able to run this interpreter and import the platform as task processes do.

    Where Python lives in a folder only root may enter (pyenv under /root), that folder lets the task user
    pass through it, and nothing more (an ACL entry; nobody else gains anything). Raises, naming the
    folder, if the task user still cannot."""
    user = ensure(TASK_USER)
    if _runs_as(user, project_root):
        return user
    for folder in _closed_folders_on_the_way(Path(sys.executable).resolve(), user):
        _let_pass(folder, user)
    if not _runs_as(user, project_root):
        raise TaskUserError(
            f"the task user {TASK_USER} cannot run {sys.executable} or read the platform's code in {project_root}: "
            f"let it read them (folders o+rx, files o+r), or start the platform as an ordinary user")
    return user


def _runs_as(user: pwd.struct_passwd, project_root: Path) -> bool:
    result = subprocess.run(["runuser", "-u", user.pw_name, "--", sys.executable, "-c", RUNTIME_CHECK],
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                 "PYTHONPATH": str(project_root / "plugins")},
                            cwd="/", capture_output=True, text=True, check=False)
    return result.returncode == 0


def _closed_folders_on_the_way(target: Path, user: pwd.struct_passwd) -> list[Path]:
    """Folders above `target` that others may not pass through (owned by someone other than `user`)."""
    closed = []
    for folder in reversed(target.parents):
        status = os.stat(folder)
        if not status.st_mode & 0o001 and status.st_uid != user.pw_uid:
            closed.append(folder)
    return closed


def _let_pass(folder: Path, user: pwd.struct_passwd) -> None:
    """Add 'user may pass through' to `folder`'s access ACL; the owner, group and others keep what they had."""
    if ACL_XATTR in os.listxattr(folder):
        raise TaskUserError(f"{folder} has an access ACL already: add an entry that lets {user.pw_name} pass "
                            f"through it (setfacl -m u:{user.pw_name}:x), then start again")
    mode = os.stat(folder).st_mode
    entries = [(ACL_USER_OBJ, (mode >> 6) & 7, ACL_NO_ID), (ACL_USER, 1, user.pw_uid),
               (ACL_GROUP_OBJ, (mode >> 3) & 7, ACL_NO_ID), (ACL_MASK, ((mode >> 3) & 7) | 1, ACL_NO_ID),
               (ACL_OTHER, mode & 7, ACL_NO_ID)]
    os.setxattr(folder, ACL_XATTR, struct.pack("<I", ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries))
    print(f"  {folder}: the task user {user.pw_name} may now pass through it (an ACL entry), to reach Python",
          flush=True)


def become(name: str) -> pwd.struct_passwd:
    """Become `name` for good: its user and group, no supplementary groups, and no way back."""
    user = pwd.getpwnam(name)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    forbid_new_privileges()
    if 0 in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()):
        raise RuntimeError(f"this process is still root after becoming {name}")
    return user


def shed_inherited_files() -> int:
    """Put /dev/null in place of every descriptor this process inherited that is not a socket; how many.

    A task process is forked from an executor worker, root's, and inherits its pipes (the executor's work
    queue, which the worker unpickles: a way back to root), its log file and its shared memory. The task
    talks to its supervisor over sockets, which it keeps."""
    shed = 0
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for entry in os.listdir("/proc/self/fd"):
            fd = int(entry)
            if fd == null:
                continue
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    continue
            except OSError:  # the listing's own descriptor, closed by now
                continue
            inheritable = os.get_inheritable(fd)
            os.dup2(null, fd, inheritable=inheritable)
            shed += 1
    finally:
        os.close(null)
    return shed


def forbid_new_privileges() -> None:
    """No program this process starts gains privileges (setuid programs such as su or sudo, file capabilities)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
