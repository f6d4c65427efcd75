"""Who owns the platform's files and processes when it is started as root.

PostgreSQL refuses to run as root and runs as its own system user (`postgres.py`). The services' secret
files (`.local/secrets.json`, `credentials.json`, `env`, `airflow.env`, Airflow's `airflow.cfg`) belong to
`SECRETS_OWNER`, a system user nothing runs as, mode 0600: the services read them as root, with the
capability to read any file; a task process gives up every capability before it runs task code
(`drop_privileges`, called by `task_secrets.py`), so although still root it reads only what root owns
and cannot read those files, the database's files, the services' logs, or any service's memory or
environment. Started as another user, everything runs and owns its files as that user.

Task processes do not switch to a user of their own: where Python lives under a home folder only root
may enter (as on these machines), a task process of another user could not import what it has not
imported yet; see the README's "Secrets".
"""

from __future__ import annotations

import ctypes
import os
import pwd
import subprocess
from pathlib import Path

from benefitflow import file_store

SECRETS_OWNER = "benefitflow-secrets"

# <linux/prctl.h>, <linux/capability.h>, <linux/securebits.h>
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# No capability from uid 0 or a setuid fix-up, no ambient capability, kept over exec; each locked.
SECUREBITS_NO_ROOT = 0b1111_1111
CAPABILITY_VERSION_3 = 0x20080522
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}


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


def secrets_owner() -> file_store.Owner | None:
    """Whom the services' secret files belong to: `SECRETS_OWNER` when we are root, otherwise ourselves (None)."""
    if not running_as_root():
        return None
    user = ensure(SECRETS_OWNER)
    return user.pw_uid, user.pw_gid


def write_secret(path: Path, text: str) -> None:
    file_store.write_secret(path, text, owner=secrets_owner())


def keep_secret(path: Path) -> None:
    """An existing secret file made the secrets owner's, 0600, if it is not already."""
    owner = secrets_owner()
    status = path.stat()
    if owner is not None and (status.st_uid, status.st_gid) != owner:
        os.chown(path, *owner)
    if status.st_mode & 0o777 != file_store.SECRET_FILE_MODE:
        path.chmod(file_store.SECRET_FILE_MODE)


class _CapabilityHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapabilityData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges() -> None:
    """Give up, for good, what lets this process do more than its user's file modes allow.

    No new privileges on exec (no setuid program, no file capability); as root, also every capability:
    from the bounding set and the securebits where we may change them, and from the effective,
    permitted, inheritable and ambient sets always. Raises if any capability is left."""
    libc = ctypes.CDLL(None, use_errno=True)

    def prctl(option: int, value: int, *, required: bool = True) -> None:
        if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0 and required:
            raise OSError(ctypes.get_errno(), f"prctl({option}, {value}): {os.strerror(ctypes.get_errno())}")

    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if not running_as_root():
        return
    for capability in range(int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1):
        prctl(PR_CAPBSET_DROP, capability, required=False)  # needs CAP_SETPCAP; no_new_privs covers exec anyway
    prctl(PR_SET_SECUREBITS, SECUREBITS_NO_ROOT, required=False)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, required=False)
    header = _CapabilityHeader(CAPABILITY_VERSION_3, 0)
    nothing = (_CapabilityData * 2)()
    if libc.syscall(SYS_CAPSET[os.uname().machine], ctypes.byref(header), nothing) != 0:
        raise OSError(ctypes.get_errno(), f"capset: {os.strerror(ctypes.get_errno())}")
    left = {name: value for name, value in capability_sets().items() if name != "CapBnd" and value}
    if left or libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        raise RuntimeError(f"this process still holds capabilities {left} or may gain privileges on exec")


def capability_sets() -> dict[str, int]:
    """This process's capability sets, as /proc/self/status shows them (CapInh, CapPrm, CapEff, CapBnd, CapAmb)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return {name: int(value, 16) for name, _, value in (line.partition(":\t") for line in lines)
            if name.startswith("Cap")}
