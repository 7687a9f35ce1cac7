"""Who holds a claim: ``host:pid:start`` names one process for as long as the machine is up.

The process id alone is not enough: ids are reused, so the process's start time (clock ticks
since boot, from ``/proc/<pid>/stat``) is part of the name. A holder on this host is *gone*
when no process has that id any more, or the one that has it started at another time. A
holder on another host, or one written in an older format, is never judged gone here: only
the claim timeout can free it.
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _start_time(pid: int) -> str | None:
    """The process's start time as the kernel counts it, or None if there is no such process
    (a zombie, killed but not yet reaped by its parent, counts as none) or no /proc to ask."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()          # field 22 of stat; the first two were split off


@cache
def this_process() -> str:
    """The holder name of this process (threads add ``/n`` to it)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or 'unknown'}"


def process_of(holder: str) -> str:
    """The process part of a claim holder: the thread suffix dropped."""
    return holder.split("/", 1)[0]


def is_gone(holder: str) -> bool:
    """True only when the holder is certainly a process of this host that no longer runs."""
    host, _, rest = process_of(holder).partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or not start.isdigit():
        return False
    if not os.path.isdir("/proc/self"):
        return False                    # no way to tell a reused pid apart: trust the timeout
    return _start_time(int(pid_text)) != start
