"""``--user``: the workload runs as another user while greentop keeps root for the sensors.

RAPL's ``energy_uj`` has been root-only since Linux 5.10 and the MSR devices need root, but a
training job should not run as root. ``greentop record --user alice -- python train.py``, started
as root, runs the workload as ``alice`` (her uid, primary gid and supplementary groups, with HOME,
USER and LOGNAME set to hers) and lets her processes, and only hers (root's too), reach the phase
socket (``EventListener(owner=...)``). The trace stores who the workload ran as (``meta``).

A workload that changes user by itself (``sudo -u alice ...``) is outside what greentop can see:
its phase events are refused by the socket's permissions before greentop learns of them.
``user_switcher`` names the common commands that do this, so that greentop can say so at the start
and the summary can say so when no phase event arrived (:func:`workload_notes`).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

# Commands that run what follows them as another user (or group): greentop cannot follow the switch.
USER_SWITCHERS = frozenset({"sudo", "su", "runuser", "setpriv", "doas", "gosu", "su-exec", "chpst", "sg", "setuidgid",
                            "s6-setuidgid", "pkexec"})


class RunAsError(Exception):
    """``--user`` cannot be honoured (unknown user, greentop not root); one line."""


@dataclass(frozen=True)
class RunAs:
    """Who the workload runs as: ``uid``, primary ``gid``, supplementary ``groups``, ``home``."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def env(self) -> dict[str, str]:
        """What a login as this user would set: programs read HOME (caches, ~/.config) and USER."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}

    def popen_kwargs(self) -> dict[str, Any]:
        """``subprocess.Popen``'s identity arguments: the child sets groups, gid, then uid before
        exec (and before ``preexec_fn``, so a parent-death signal set there survives the switch)."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def resolve(spec: str) -> RunAs:
    """The user named ``spec`` (a name, or a numeric uid that has a passwd entry)."""
    text = spec.strip()
    try:
        pw = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except (KeyError, ValueError, OverflowError):
        raise RunAsError(f"--user: unknown user {spec!r}") from None
    try:
        groups = tuple(sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid))))
    except OSError:
        groups = (pw.pw_gid,)
    return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir or "/")


def check_privilege(run_as: RunAs, euid: int | None = None) -> None:
    """Only root can start a process as another user; asking for one's own user is allowed."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0 and run_as.uid != euid:
        raise RunAsError(f"--user {run_as.name} needs greentop to run as root (it runs as uid {euid}): "
                         f"sudo greentop ... --user {run_as.name} -- CMD")


def from_option(spec: str | None) -> RunAs | None:
    """``--user``'s value checked: None without it; RunAsError with one line when it cannot be."""
    if spec is None:
        return None
    run_as = resolve(spec)
    check_privilege(run_as)
    return run_as


def user_switcher(cmd: Sequence[str]) -> str:
    """The command's first word when it is a known user-switching command, else ""."""
    return os.path.basename(cmd[0]) if cmd and os.path.basename(cmd[0]) in USER_SWITCHERS else ""


def run_metadata(run_as: RunAs | None, cmd: Sequence[str]) -> dict[str, Any]:
    """What the trace stores about the workload's user and greentop's (``meta``)."""
    uid = os.geteuid() if run_as is None else run_as.uid
    gid = os.getegid() if run_as is None else run_as.gid
    meta: dict[str, Any] = {"workload_user": run_as.name if run_as is not None else _user_name(uid),
                            "workload_uid": uid, "workload_gid": gid, "recorder_uid": os.geteuid()}
    switcher = user_switcher(cmd)
    if switcher:
        meta["workload_user_switcher"] = switcher
    return meta


def start_warning(run_as: RunAs | None, cmd: Sequence[str]) -> str:
    """One line for the start of a run whose command changes user by itself; "" otherwise."""
    switcher = user_switcher(cmd)
    if not switcher:
        return ""
    uid = run_as.uid if run_as is not None else os.geteuid()
    who = "root's" if uid == 0 else f"{_user_name(uid)}'s (and root's)"
    return (f"greentop: the workload starts through {switcher}, which may run it as another user: only {who} phase "
            f"events can reach greentop; to run it as another user, use --user NAME instead of {switcher}")


def workload_notes(meta: Mapping[str, Any], workload_events: int) -> list[str]:
    """The summary's notes on who the workload ran as and on phase events that could not arrive.
    ``workload_events``: phases, marks and counts the trace holds."""
    notes = []
    if "workload_uid" in meta and "recorder_uid" in meta and int(meta["workload_uid"]) != int(meta["recorder_uid"]):
        notes.append(f"the workload ran as user {meta.get('workload_user', '?')} (uid {int(meta['workload_uid'])}, "
                     f"gid {int(meta.get('workload_gid', -1))}); greentop as uid {int(meta['recorder_uid'])}")
    switcher = str(meta.get("workload_user_switcher", ""))
    if switcher and workload_events == 0:
        notes.append(f"no phase event was received, and the workload started through {switcher}, which may run it as "
                     f"another user than {meta.get('workload_user', 'greentop')}: phases it declared, if any, could "
                     "not reach greentop (each process that tried printed 'greentop: phase events cannot reach the "
                     "recorder'); run it with --user NAME instead")
    return notes


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)

