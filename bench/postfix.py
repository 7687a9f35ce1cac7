"""A real MTA for the SMTP benchmark: Debian's Postfix on 127.0.0.1:2525 that queues every
message (fsync and all) and then discards it (``default_transport = discard``).

:func:`ensure_postfix` installs Postfix with apt-get where it can (root, Debian), configures
the default instance for this and (re)starts it. Where it cannot, it returns the reason, and
the benchmark prints it instead of a figure. Meant for a development or CI machine: it
rewrites /etc/postfix/main.cf.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections import Counter

PORT = 2525
SETTINGS = {
    "compatibility_level": "3.6",
    "inet_interfaces": "loopback-only",
    "inet_protocols": "ipv4",
    "myhostname": "bench.localdomain",
    "mydestination": "",
    "mynetworks": "127.0.0.0/8",
    "smtpd_relay_restrictions": "permit_mynetworks, reject",
    "default_transport": "discard",
    "relay_transport": "discard",
    "local_transport": "discard",
    "message_size_limit": "50000000",
    "maillog_file": "/var/log/postfix-bench.log",
}
# The smtpd service on 2525 instead of 25.
SERVICE = f"127.0.0.1:{PORT}/inet=127.0.0.1:{PORT} inet n - n - - smtpd"


def ensure_postfix() -> str | None:
    """None when Postfix listens on 127.0.0.1:2525, else why it does not."""
    if shutil.which("postfix") is None and not os.path.exists("/usr/sbin/postfix"):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return ("Postfix is not installed and cannot be installed here (needs root and "
                    "apt-get): apt-get install postfix, then run the benchmark again")
        subprocess.run(["debconf-set-selections"], input="postfix postfix/main_mailer_type "
                       "select No configuration\n", text=True, check=False)
        installed = subprocess.run(["apt-get", "install", "-y", "-q", "postfix"],
                                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                                   capture_output=True, text=True, check=False)
        if installed.returncode != 0:
            return f"apt-get install postfix failed: {installed.stderr.strip()[-300:]}"
    if os.geteuid() != 0:
        return "configuring Postfix needs root"
    if not os.path.exists("/etc/postfix/main.cf"):
        open("/etc/postfix/main.cf", "w").close()
    postconf = "/usr/sbin/postconf"
    subprocess.run([postconf, "-e", *(f"{k}={v}" for k, v in SETTINGS.items())], check=True)
    subprocess.run([postconf, "-M", SERVICE], check=True)
    subprocess.run([postconf, "-MX", "smtp/inet"], check=False)    # nothing on port 25
    running = subprocess.run(["/usr/sbin/postfix", "status"], capture_output=True,
                             check=False).returncode == 0
    action = "reload" if running else "start"
    started = subprocess.run(["/usr/sbin/postfix", action], capture_output=True, text=True,
                             check=False)
    if started.returncode != 0:
        return f"postfix {action} failed: {started.stderr.strip()[-300:]}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", PORT), timeout=1):
                return None
        except OSError:
            time.sleep(0.2)
    return f"Postfix does not answer on 127.0.0.1:{PORT} (see /var/log/postfix-bench.log)"


LOG = SETTINGS["maillog_file"]
_DISCARDED = re.compile(r"postfix/discard\[\d+\]: \w+: to=<([^>]*)>.*status=sent")


def log_offset() -> int:
    return os.path.getsize(LOG) if os.path.exists(LOG) else 0


def discarded_since(offset: int, expected: int, timeout: float = 60.0) -> Counter[str]:
    """Messages Postfix delivered (to its discard transport) per recipient, from its log after
    ``offset``; waits until ``expected`` are logged or ``timeout`` passes (logging and the
    queue manager trail the SMTP replies)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(LOG, "rb") as log:
            log.seek(offset)
            counts = Counter(match.group(1) for match in _DISCARDED.finditer(
                log.read().decode("utf-8", "replace")))
        if counts.total() >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)
