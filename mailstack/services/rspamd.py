"""rspamd on the mx hosts: Postfix's milter, scanning every message before it is accepted, and
the names Postfix, ClamAV's role and the tests share with it (ports, key directory, the rules
generated from the spam settings).

Bayes statistics, fuzzy hashes and caches live in the shared Valkey; the fuzzy storage worker on
each mx writes there, so a specimen learned on one mx is known to all. ClamAV is asked through
the antivirus module; a failed virus scan makes the sender retry. Outbound mail is DKIM-signed
with keys from the shared Valkey: customer domains' as the panel writes them, the operator's
own from the environment's secrets, which the role writes there (signing_keys_in_valkey).
"""

import functools
import hashlib
import re
from dataclasses import dataclass

from mailstack.deploy.configfile import ConfigFile
from mailstack.dkim import SIGNING_KEYS_HASH, SIGNING_SELECTORS_HASH, domain_keys
from mailstack.services import clamav, valkey, valkeyproxy

STOP_TIMEOUT_SECONDS = 10
"""How long (seconds) a stop of rspamd waits for its workers before systemd kills them. rspamd
3.12's proxy worker waits out its whole shutdown time (twice the task timeout) with no session
open, so every stop lasts this long, and meanwhile Postfix answers 4xx to every client: as short
as rspamd's own soft shutdown. A scan cut off by it is answered 4xx and retried, never lost."""

UNIT = "rspamd"
CHECK = "rspamadm configtest"
MILTER_PORT = 11332
SCANNER_PORT = 11333
CONTROLLER_PORT = 11334
FUZZY_PORT = 11335
MILTER = f"inet:127.0.0.1:{MILTER_PORT}"
DKIM_KEY_DIR = "/var/lib/rspamd/dkim"
CONTROLLER_PASSWORD_SECRET = "rspamd_controller_password"
USER_SPAM_UNIT = "mailstack-user-spam.timer"
USER_SPAM_STATE = "mailstack-user-spam"
USER_SETTINGS_MAP = f"/var/lib/{USER_SPAM_STATE}/user-settings.json"
"""Users' own spam thresholds as an rspamd settings map (mailstack/userspam.py)."""
CONTROLLER_PASSWORD_FILE = "/etc/mailstack/rspamd-controller.password"
"""The controller's password for root on the host: `rspamc -P "$(cat <this file>)" ...`."""
METRICS_PASSWORD_SECRET = "rspamd_metrics_password"
"""The controller's read-only password (statistics, /metrics): Prometheus has it; learning and
every other privileged command take only the operator's."""
VALKEY_PASSWORD_FILE = "/etc/mailstack/valkey.password"
"""Valkey's password for root on the host, for valkey-cli (`REDISCLI_AUTH`)."""
LOCAL = (
    "logging.inc",
    "worker-proxy.inc",
    "worker-normal.inc",
    "worker-controller.inc",
    "worker-fuzzy.inc",
    "redis.conf",
    "classifier-bayes.conf",
    "actions.conf",
    "greylist.conf",
    "ratelimit.conf",
    "antivirus.conf",
    "force_actions.conf",
    "milter_headers.conf",
    "phishing.conf",
    "dkim_signing.conf",
    "arc.conf",
    "groups.conf",
    "metadata_exporter.conf",
)
# override.d replaces rspamd's own values; local.d would add lists to them (local_addrs would keep
# the private ranges, where the lab's and the load balancers' clients come from).
OVERRIDE = ("options.inc", "rbl.conf", "fuzzy_check.conf")


@dataclass(frozen=True)
class BlocklistRule:
    kind: str
    """'ip' (the client and Received addresses) or 'uri' (domains of links and addresses)."""
    zone: str
    score: float
    listed_replies: tuple[str, ...] = ("127.0.0.0/8",)
    error_replies: tuple[str, ...] = ("127.255.255.0/24",)

    @property
    def symbol(self) -> str:
        return f"MAILSTACK_{self.kind.upper()}_" + re.sub(r"[^A-Z0-9]", "_", self.zone.upper())

    @property
    def error_symbol(self) -> str:
        """Marks an answer that says the list refused the query (no points)."""
        return f"{self.symbol}_REFUSED"

    @property
    def description(self) -> str:
        what = "Sending address" if self.kind == "ip" else "Linked domain"
        return f"{what} listed in {self.zone}"


def _without(listed, errors) -> list[str]:
    """The listing ranges with the error ranges taken out: rspamd matches a reply against each
    symbol's ranges in turn, so they must not overlap."""
    remaining = list(listed)
    for error in errors:
        remaining = [
            part
            for network in remaining
            for part in (
                network.address_exclude(error)
                if error.subnet_of(network)
                else ([] if network.subnet_of(error) else [network])
            )
        ]
    return [str(network) for network in sorted(remaining)]


def blocklist_rules(spam) -> list[BlocklistRule]:
    """One rule per list in the spam settings, IP lists first."""
    return [
        BlocklistRule(
            kind,
            entry.zone,
            entry.score,
            tuple(_without(entry.listed_replies, entry.error_replies)),
            tuple(map(str, entry.error_replies)),
        )
        for kind, entries in (("ip", spam.ip_blocklists), ("uri", spam.uri_blocklists))
        for entry in entries
    ]


def scanner_files(deployment, host) -> list[ConfigFile]:
    """Every file the rspamd unit reads."""
    settings = deployment.settings
    spam = settings.mail.spam
    keys = domain_keys(settings, deployment.secrets)
    controller_password = deployment.secrets.get(CONTROLLER_PASSWORD_SECRET)
    limit = settings.mail.outbound_limit
    context = {
        # The policy service on the same mx counts them for sending holds.
        "scan_reports_url": (
            f"http://127.0.0.1:{settings.mail.policy_service.scan_reports_port}/scan-refused"
            if limit.enabled and limit.sending_hold.enabled
            else None
        ),
        "milter_port": MILTER_PORT,
        "scanner_port": SCANNER_PORT,
        "controller_port": CONTROLLER_PORT,
        "controller_password": password_hash(controller_password),
        "metrics_password": password_hash(deployment.secrets.get(METRICS_PASSWORD_SECRET)),
        "private_ip": str(host.private_ip),
        "fuzzy_port": FUZZY_PORT,
        "fuzzy_expire_days": spam.fuzzy_expire_days,
        "public_fuzzy": spam.public_fuzzy,
        "scan_timeout": spam.scan_timeout_seconds,
        "valkey_server": valkeyproxy.server_for(deployment, "filters"),
        "valkey_password": deployment.secrets.get(valkey.PASSWORD_SECRET),
        "bayes_min_learns": spam.bayes_min_learns,
        "bayes_autolearn": spam.bayes_autolearn,
        "reject_score": spam.reject_score,
        "add_header_score": spam.add_header_score,
        "max_scan_bytes": settings.mail.antivirus.max_scan_mib * 1024 * 1024,
        "clamd_socket": clamav.CLAMD_SOCKET,
        "phishing_feeds": spam.phishing_feeds,
        "blocklists": blocklist_rules(spam),
        "dkim_keys": keys,
        "key_dir": DKIM_KEY_DIR,
        # Hosts whose own mail rspamd takes as local: the mailstore nodes (what Sieve sends for
        # a user), the monitoring hosts (alerts) and the web hosts (the panel's notices), each
        # once.
        "local_addresses": list(
            dict.fromkeys(
                deployment.addresses("mailstore")
                + deployment.monitoring_addresses
                + deployment.addresses("web")
            )
        ),
        "keys_hash": SIGNING_KEYS_HASH,
        "selectors_hash": SIGNING_SELECTORS_HASH,
    }
    # Some hold the Valkey and controller passwords.
    readable = {"user": "root", "group": "_rspamd", "mode": "640"}
    configuration = [
        ConfigFile.template("rspamd", f"/etc/rspamd/{directory}/{name}", **readable, **context)
        for directory, names in (("local.d", LOCAL), ("override.d", OVERRIDE))
        for name in names
    ]
    rules = ConfigFile.template("rspamd", "/etc/rspamd/rspamd.local.lua", **readable)
    user_settings = ConfigFile.template(
        "rspamd", "/etc/rspamd/rspamd.conf.override", user_settings_map=USER_SETTINGS_MAP
    )
    key_files = [
        ConfigFile.literal(
            key_file(key),
            key.private_pem,
            user="_rspamd",
            group="_rspamd",
            mode="600",
        )
        for key in keys
    ]
    operator = [
        ConfigFile.literal(path, secret + "\n", effect="none", mode="600")
        for path, secret in (
            (CONTROLLER_PASSWORD_FILE, controller_password),
            (VALKEY_PASSWORD_FILE, deployment.valkey_store("filters").password),
        )
    ]
    # Applied by a daemon-reload; rspamd itself need not restart for it.
    stop = ConfigFile.template(
        "rspamd",
        "/etc/systemd/system/rspamd.service.d/mailstack-stop.conf",
        effect="reload",
        stop_timeout=STOP_TIMEOUT_SECONDS,
    )
    return [*configuration, rules, user_settings, *key_files, *operator, stop]


_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
PBKDF2_ROUNDS = 16000
"""rspamd's rounds for its PBKDF2-BLAKE2b password hashes (type 1, `rspamadm pw -t pbkdf2`)."""


def _zbase32(data: bytes) -> str:
    # rspamd's base32: the z-base-32 alphabet, bits taken least significant first.
    value = int.from_bytes(data, "little")
    return "".join(_ZBASE32[(value >> shift) & 31] for shift in range(0, len(data) * 8, 5))


# 16000 BLAKE2b rounds each: computed once per password in a deploy, not once per mx host.
@functools.cache
def password_hash(password: str, salt: bytes | None = None) -> str:
    """The controller's form of a password, `$1$<salt>$<key>` (what `rspamadm pw -t pbkdf2`
    prints): PBKDF2 with keyed BLAKE2b-512 as its PRF, 16000 rounds, a 20-byte salt and a
    32-byte key, both in rspamd's base32 (src/libcryptobox/cryptobox.c, rspamd_cryptobox_pbkdf2).

    Without `salt`, it is derived from the password, so the same password gives the same line
    at every deploy: the platform's passwords are long random secrets, for which a per-use salt
    (there against precomputed tables of human passwords) adds nothing.
    """
    secret = password.encode()
    if len(secret) > 64:
        # rspamd hashes longer passwords first; the platform's are far shorter.
        raise ValueError("a password for rspamd's controller may have at most 64 bytes")
    if salt is None:
        salt = hashlib.blake2b(secret, digest_size=20, person=b"mailstack-rspamd").digest()
    block = hashlib.blake2b(salt + (1).to_bytes(4, "big"), key=secret).digest()
    key = int.from_bytes(block, "big")
    for _ in range(1, PBKDF2_ROUNDS):
        block = hashlib.blake2b(block, key=secret).digest()
        key ^= int.from_bytes(block, "big")
    return f"$1${_zbase32(salt)}${_zbase32(key.to_bytes(64, 'big')[:32])}"


def key_file(key) -> str:
    return f"{DKIM_KEY_DIR}/{key.domain}.{key.selector}.key"


def valkey_cli(deployment) -> str:
    """valkey-cli against rspamd's Valkey (use 'filters') as root on an mx host, password from
    its file: where rspamd itself reaches the primary (mailstack.services.valkeyproxy)."""
    address, port = valkeyproxy.server_for(deployment, "filters").rsplit(":", 1)
    return (
        f'REDISCLI_AUTH="$(cat {VALKEY_PASSWORD_FILE})" valkey-cli --no-auth-warning --raw'
        f" -h {address} -p {port}"
    )


def signing_key_check(deployment) -> str:
    """A shell command printing each operator domain whose entries in the signing hashes
    differ from its key file here (all of them before valkey-cli or the files exist)."""
    cli = valkey_cli(deployment)
    checks = [
        f'[ "$({cli} HGET {SIGNING_SELECTORS_HASH} {key.domain})" = "{key.selector}" ]'
        f' && [ "$({cli} HGET {SIGNING_KEYS_HASH} {key.selector}.{key.domain})"'
        f' = "$(cat {key_file(key)})" ] || echo {key.domain}'
        for key in domain_keys(deployment.settings, deployment.secrets)
    ]
    return "; ".join(checks) or "true"


def signing_key_writes(deployment, domains) -> list[str]:
    """Shell commands writing these operator domains' keys and selectors into the signing
    hashes (the key from its file on stdin, never on a command line)."""
    cli = valkey_cli(deployment)
    return [
        f"{cli} -x HSET {SIGNING_KEYS_HASH} {key.selector}.{key.domain} < {key_file(key)}"
        f" >/dev/null && {cli} HSET {SIGNING_SELECTORS_HASH} {key.domain} {key.selector}"
        " >/dev/null"
        for key in domain_keys(deployment.settings, deployment.secrets)
        if key.domain in domains
    ]


def user_spam_files(deployment, host) -> list[ConfigFile]:
    """The timer that writes users' spam thresholds into rspamd's settings map."""
    from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
    from mailstack.services import policyd

    return [
        ConfigFile.template(
            "rspamd",
            "/etc/systemd/system/mailstack-user-spam.service",
            app_source=APP_SOURCE,
            app_venv=APP_VENV,
            code_version=code_version(),
            policyd_config=policyd.CONFIG,
            map_file=USER_SETTINGS_MAP,
            state_directory=USER_SPAM_STATE,
        ),
        ConfigFile.template("rspamd", "/etc/systemd/system/mailstack-user-spam.timer"),
    ]


def config_files(deployment, host) -> list[ConfigFile]:
    """Every file the role installs: the scanner's, and the users' thresholds' timer."""
    return scanner_files(deployment, host) + user_spam_files(deployment, host)
