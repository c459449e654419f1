"""Off-site backups of the mail store: the mailstore node that serves backs up into the lab's
storage account (the internet host, standing in for a Storage Box) and reports it; a message the
user deleted comes back with a restore of their mailbox, beside their current mail; a server
with another host key gets nothing."""

import hashlib
import imaplib
import re
import subprocess
import sys
import time
import uuid

import pytest

from mailstack.jobs import BACKUP_METRIC
from mailstack.services import backup, dovecot
from mailstack.testing.platform import message

pytestmark = pytest.mark.lab


def serving_node(platform) -> str:
    """The mailstore node where Dovecot runs (the other stands by)."""
    for node in platform.hosts("mailstore"):
        if platform.sh(node, "systemctl is-active dovecot", check=False).strip() == "active":
            return node
    raise AssertionError("Dovecot runs on no mailstore node")


def run_backup(platform, node: str) -> None:
    """A run of the timer's job that begins now, waited for (a oneshot service). A run the
    timer began earlier may still be going, and `start` joins it: the second start begins anew."""
    unit = f"{backup.UNIT}.service"
    platform.sh(node, f"systemctl start {unit} && systemctl start {unit}", timeout=300)


def imap_session(platform, mailbox) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL(platform.access_address, 993, ssl_context=platform.client_tls())
    imap.login(mailbox.address, mailbox.password)
    return imap


def bodies(imap: imaplib.IMAP4_SSL, folder: str) -> dict[str, str]:
    """Subject → SHA-256 of the whole message, for every message in `folder`."""
    assert imap.select(f'"{folder}"', readonly=True)[0] == "OK", folder
    _, found = imap.search(None, "ALL")
    result = {}
    for number in found[0].split():
        _, data = imap.fetch(number, "(RFC822)")
        raw = data[0][1]
        subject = re.search(rb"^Subject: (.*?)\r?$", raw, re.M).group(1).decode()
        assert subject not in result, f"{subject} twice in {folder}"
        result[subject] = hashlib.sha256(raw).hexdigest()
    return result


def deliver(platform, mailbox, subject: str) -> None:
    marker = uuid.uuid4().hex
    with platform.submission(mailbox) as session:
        mail = message(subject, f"{marker} kept safe", mailbox.address, mailbox.address)
        session.send_message(mail)
    platform.wait_for_imap(mailbox, marker)


def test_a_deleted_message_comes_back_from_the_backup_beside_the_current_mail(platform):
    mailbox = platform.new_mailbox()
    deliver(platform, mailbox, "kept")
    deliver(platform, mailbox, "deleted later")
    with imap_session(platform, mailbox) as imap:
        before = bodies(imap, "INBOX")

    node = serving_node(platform)
    started = time.time()
    run_backup(platform, node)
    report = platform.sh(node, f"cat {backup.REPORT}")
    reported = float(re.search(rf'^{BACKUP_METRIC}{{backup="mail"}} (\S+)$', report, re.M)[1])
    assert started - 5 <= reported <= time.time() + 5, report
    # The standby node backs up nothing and reports nothing.
    standby = next(n for n in platform.hosts("mailstore") if n != node)
    run_backup(platform, standby)
    assert platform.sh(standby, f"test -e {backup.REPORT} || echo absent").strip() == "absent"

    status = subprocess.run(
        [sys.executable, "-m", "mailstack.cli", "backup", "status", "--lab", platform.lab.name],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "mail: newest snapshot" in status.stdout, status.stdout

    # The user deletes a message; a new one arrives after the backup.
    with imap_session(platform, mailbox) as imap:
        imap.select("INBOX")
        _, found = imap.search(None, "SUBJECT", '"deleted later"')
        imap.store(found[0], "+FLAGS", "\\Deleted")
        imap.expunge()
    deliver(platform, mailbox, "after the backup")

    restored = platform.sh(node, f"{backup.COMMAND} restore {mailbox.address}", timeout=300)
    folder = re.search(r"restored into '([^']+)'", restored)[1]

    with imap_session(platform, mailbox) as imap:
        inbox = bodies(imap, "INBOX")
        back = bodies(imap, f"{folder}/INBOX")
    # Byte for byte as delivered, beside the current mail, which is as it was.
    assert back == before
    assert set(inbox) == {"kept", "after the backup"}
    assert inbox["kept"] == before["kept"]


def test_the_whole_mail_store_comes_back_into_an_empty_directory(platform):
    """What a rebuild puts on a new mail volume: every file of the snapshot, byte for byte, with
    its owner and mode."""
    mailbox = platform.new_mailbox()
    deliver(platform, mailbox, "whole store")
    node = serving_node(platform)
    run_backup(platform, node)
    home = platform.sh(node, f"doveadm user -f home {mailbox.address}").strip()
    relative = home.removeprefix(dovecot.MAIL_ROOT.rstrip("/") + "/")
    scratch = "/var/tmp/mailstack-test-restore-store"
    listing = "cd {} && find Maildir -type f -path '*/cur/*' -o -type f -path '*/new/*' | sort | "
    listing += "xargs -r stat -c '%U %a %n' && find Maildir -type f -path '*/new/*' "
    listing += "-o -type f -path '*/cur/*' | sort | xargs -r sha256sum"
    try:
        said = platform.sh(
            node,
            f"rm -rf {scratch} && {backup.COMMAND} restore-store --into {scratch}",
            timeout=600,
        )
        assert f"is in {scratch}" in said, said
        live = platform.sh(node, listing.format(home))
        back = platform.sh(node, listing.format(f"{scratch}/{relative}"))
        assert live and back == live
        refused = platform.sh(
            node, f"{backup.COMMAND} restore-store --into {scratch}; echo exit=$?", timeout=120
        )
        assert "exit=1" in refused
    finally:
        platform.sh(node, f"rm -rf {scratch}")


def test_a_restore_of_a_time_before_any_backup_is_refused(platform):
    mailbox = platform.new_mailbox()
    node = serving_node(platform)
    result = subprocess.run(
        platform.lab.ssh_command(
            platform.lab.host(node),
            f"{backup.COMMAND} restore {mailbox.address} --at 2000-01-01T00:00:00Z",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "no mail snapshot taken at or before 2000-01-01" in result.stderr


def test_a_server_with_another_host_key_gets_no_backup(platform):
    """The job sends only to the server whose host key the settings pin (as a Storage Box's):
    with another key on record it refuses to connect, and says so."""
    node = serving_node(platform)
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOo1FE4ca4wkgP+fv/KATw7Sk6mjirN983/zOwVw7ml0"
    config = "/run/mailstack-backup-wrong-key.json"
    known_hosts = "/run/mailstack-backup-wrong-key.known_hosts"
    rewrite = (
        "import json, sys; c = json.load(open(sys.argv[1])); "
        "c['ssh_command'] = [a.replace(sys.argv[2], sys.argv[3]) for a in c['ssh_command']]; "
        "json.dump(c, open(sys.argv[4], 'w'))"
    )
    platform.sh(
        node,
        f"sed 's| .*| {other_key}|' {backup.KNOWN_HOSTS} > {known_hosts} && "
        f'python3 -c "{rewrite}" {backup.CONFIG} {backup.KNOWN_HOSTS} {known_hosts} {config}',
    )
    try:
        result = subprocess.run(
            platform.lab.ssh_command(
                platform.lab.host(node),
                backup.COMMAND.replace(backup.CONFIG, config) + " status",
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        platform.sh(node, f"rm -f {config} {known_hosts}")
    assert result.returncode == 1, result.stdout + result.stderr
    # ssh refuses the key before the SFTP session starts; what of ssh's own lines restic passes
    # on varies (it may stop reading them first), restic's own message does not.
    assert re.search(
        r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|"
        r"unable to start the sftp session",
        result.stderr,
    ), result.stderr
