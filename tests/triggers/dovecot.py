"""A real IMAP server for tests: Dovecot from Debian's packages, on loopback, with a throwaway
configuration, password file and maildir in a temporary directory (`.ci/run` installs it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "office@example.test", "s3cret-for-tests"

CONFIG = """
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = bf-test-{port}
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/home/%u
}}
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
first_valid_gid = 1
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Processed {{
    auto = create
  }}
  mailbox Refused {{
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""


@dataclass(frozen=True)
class Dovecot:
    host: str
    port: int
    user: str
    password: str
    root: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dovecot(root: Path) -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        missing = "Dovecot is not installed: apt-get install -y dovecot-imapd (.ci/run does)"
        if os.environ.get("CI"):  # CI never passes by skipping the real IMAP server
            pytest.fail(missing)
        pytest.skip(missing)
    import grp
    import pwd

    port = _free_port()
    for sub in ("run", "state", "home", "mail"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    user = pwd.getpwuid(os.getuid()).pw_name if os.getuid() else "dovecot"
    group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    if os.getuid() == 0:
        shutil.chown(root, user, group)
        for path in root.rglob("*"):
            shutil.chown(path, user, group)
        root.chmod(0o755)
    config = root / "dovecot.conf"
    config.write_text(CONFIG.format(root=root, port=port, user=user, group=group))
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):  # 10 s at most for it to listen
            if process.poll() is not None:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                raise RuntimeError(f"dovecot exited: {log}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)  # a server starting, in real time
        yield Dovecot("127.0.0.1", port, USER, PASSWORD, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def append(server: Dovecot, messages: list[bytes], folder: str = "INBOX") -> None:
    """Deliver ``messages`` with IMAP APPEND."""
    from imapclient import IMAPClient

    with IMAPClient(server.host, port=server.port, ssl=False) as client:
        client.login(server.user, server.password)
        for message in messages:
            client.append(folder, message)


def count(server: Dovecot, folder: str) -> int:
    from imapclient import IMAPClient

    with IMAPClient(server.host, port=server.port, ssl=False) as client:
        client.login(server.user, server.password)
        return int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])
