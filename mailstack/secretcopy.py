"""The off-site copy of an environment's secrets (docs/operations.md#backups).

Every deploy of a whole environment ends by putting the secrets file (mailstack.secrets: DKIM
keys, service passwords, the backups' repository password and SSH key) on the backup target
when it changed since the last copy, encrypted with age for the operators' keys
(backups.secrets_recipients, else the Ed25519 and RSA keys of environment.admin_ssh_keys):

    <backups.target.path>/secrets/<environment>.json.age            the newest
    <backups.target.path>/secrets/<environment>-<digest>.json.age   each version, kept

The copy does not depend on any secret it holds: an operator fetches it with their own login to
the account and decrypts it with their own key (`mailstack backup secrets fetch`, or
`age -d -i ~/.ssh/id_ed25519`).
"""

import hashlib
import shlex
import subprocess
import tempfile
from pathlib import Path

from mailstack.secrets import SecretStore
from mailstack.services import backup
from mailstack.settings.backups import AGE_RECIPIENT

DIRECTORY = "secrets"
SFTP_TIMEOUT_SECONDS = 120


class SecretCopyError(RuntimeError):
    """The copy could not be put, fetched or read; the message says what sftp or age said."""


def recipients(settings) -> list[str]:
    """The keys the copy is encrypted for."""
    chosen = settings.backups.secrets_recipients
    if chosen:
        return list(chosen)
    return [key for key in settings.environment.admin_ssh_keys if AGE_RECIPIENT.match(key)]


def encrypt(plaintext: bytes, keys: list[str]) -> bytes:
    """age's binary format, readable with any one of `keys`' private keys."""
    import pyrage

    parsed = [
        pyrage.x25519.Recipient.from_str(key)
        if key.startswith("age1")
        else pyrage.ssh.Recipient.from_str(key)
        for key in keys
    ]
    return pyrage.encrypt(plaintext, parsed)


def decrypt(ciphertext: bytes, identity: Path) -> bytes:
    """Read a copy with an SSH private key (unencrypted, OpenSSH's format) or an age identity
    file. Raises SecretCopyError when the key is not one it was encrypted for."""
    import pyrage

    key = identity.read_bytes()
    try:
        if key.lstrip().startswith(b"AGE-SECRET-KEY-"):
            parsed = pyrage.x25519.Identity.from_str(key.decode().strip())
        else:
            parsed = pyrage.ssh.Identity.from_buffer(key)
        return pyrage.decrypt(ciphertext, [parsed])
    except (pyrage.DecryptError, pyrage.IdentityError, ValueError) as error:
        raise SecretCopyError(f"{identity} cannot read the copy: {error}") from None


def newest_path(target, environment: str) -> str:
    """The newest copy, below the account's home."""
    return f"{target.path}/{DIRECTORY}/{environment}.json.age"


def version_path(target, environment: str, digest: str) -> str:
    """One version of the copy, named by its digest, kept beside the newest."""
    return f"{target.path}/{DIRECTORY}/{environment}-{digest[:16]}.json.age"


HOST_KEY_ALIAS = "backup-target"


def lab_address(inventory) -> str | None:
    """Where a lab's storage account answers: the lab's internet host, whose names the machine
    running the lab does not resolve. None for an environment (the target's name resolves)."""
    if not inventory.lab_file:
        return None
    return next((host.ssh_address for host in inventory.with_role("internet")), None)


def sftp(
    target, login_key: Path, batch: list[str], workdir: Path, address: str | None = None
) -> None:
    """Run sftp commands on the target (at `address` instead of its name's), trusting only
    its pinned host key."""
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"{HOST_KEY_ALIAS} {target.host_key}\n")
    result = subprocess.run(
        [
            "sftp",
            "-b",
            "-",
            "-P",
            str(target.port),
            "-i",
            str(login_key),
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            f"HostKeyAlias={HOST_KEY_ALIAS}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            f"{target.user}@{address or target.host}",
        ],
        input="\n".join(batch) + "\n",
        capture_output=True,
        text=True,
        timeout=SFTP_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise SecretCopyError(f"sftp to {target.host} failed: {result.stderr.strip()[-500:]}")


def push(settings, store: SecretStore, address: str | None = None) -> str | None:
    """Put the encrypted copy on the target when the secrets, the keys or the target changed
    since the last copy from this machine. Returns what it did, None when nothing was due."""
    target = settings.backups.target
    if target is None:
        return None
    keys = recipients(settings)
    # Read first: the login key is one of the secrets, generated on first use.
    login_key = backup.ssh_private_key(store)
    plaintext = store.path.read_bytes()
    digest = hashlib.sha256(
        plaintext + "\n".join([*keys, target.model_dump_json()]).encode()
    ).hexdigest()
    marker = store.path.with_name(store.path.name + ".offsite")
    if marker.exists() and marker.read_text().strip() == digest:
        return None
    newest = newest_path(target, settings.environment.name)
    version = version_path(target, settings.environment.name, digest)
    with tempfile.TemporaryDirectory(prefix="mailstack-secrets-") as workdir:
        work = Path(workdir)
        key_file = work / "login_key"
        key_file.touch(mode=0o600)
        key_file.write_text(login_key)
        local = work / "secrets.json.age"
        local.write_bytes(encrypt(plaintext, keys))
        quoted = shlex.quote(str(local))
        sftp(
            target,
            key_file,
            [
                # "-": the directories may exist already, the newest copy may not yet.
                f"-mkdir {shlex.quote(str(target.path))}",
                f"-mkdir {shlex.quote(f'{target.path}/{DIRECTORY}')}",
                f"put {quoted} {shlex.quote(version)}",
                f"-rm {shlex.quote(newest)}",
                f"put {quoted} {shlex.quote(newest)}",
            ],
            work,
            address,
        )
    marker.touch(mode=0o600)
    marker.write_text(digest + "\n")
    return f"secrets copied off-site to {target.host}:{newest} (for {len(keys)} keys)"


def fetch(
    settings, login_key: Path, identity: Path, output: Path, address: str | None = None
) -> str:
    """Fetch the newest copy with the operator's own login and decrypt it into `output` (which
    must not exist). Returns what it did."""
    target = settings.backups.target
    if target is None:
        raise SecretCopyError("backups.target is not set in the settings")
    if output.exists():
        raise SecretCopyError(f"{output} exists: name a new file")
    newest = newest_path(target, settings.environment.name)
    with tempfile.TemporaryDirectory(prefix="mailstack-secrets-") as workdir:
        work = Path(workdir)
        local = work / "secrets.json.age"
        get = f"get {shlex.quote(newest)} {shlex.quote(str(local))}"
        sftp(target, login_key, [get], work, address)
        plaintext = decrypt(local.read_bytes(), identity)
    output.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    output.touch(mode=0o600)
    output.write_bytes(plaintext)
    return f"the secrets of {settings.environment.name} as last copied are in {output}"
