"""Postfix on the mx hosts: postscreen and smtpd for inbound mail, submission on 587 and 465.

Hosted domains, mailboxes and forwardings are SQL lookups in the panel's views; delivery is LMTP
into Dovecot on the mailstore pair; SASL is Dovecot's auth service there. rspamd (the milter that
scans every message before it is accepted) and the policy service (greylisting, the outbound
limit) are asked by smtpd on every mx host.
"""

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import certificates, dovecot, pacemaker, postgresql, postsrsd, rspamd
from mailstack.settings.monitoring import alert_sender

UNIT = "postfix"
"""The main instance (Debian 13's postfix.service; `postfix@<name>` runs /etc/postfix-<name>)."""
FLUSH_UNIT = "mailstack-flush-queue@.service"
"""Retries the deferred mail of a takeover instance (`mailstack-flush-queue@<node>`) at once."""
TAKEOVER_GUARD = "/etc/systemd/system/postfix@.service.d/mailstack-volume.conf"
UID = 960
GID = 960
POSTDROP_GID = 961
"""Fixed on every mx (in Debian's system range), so a queue volume's files belong to the same
user and group on whichever node delivers them."""
# `postfix check` checks files and permissions; postconf reports what it cannot parse (unknown
# parameters, broken lookup tables) only as warnings, which must fail the check too.
CHECK = "postfix check && ! postconf -n 2>&1 >/dev/null | grep ."
PACKAGES = ["postfix", "postfix-pgsql", "postfix-pcre", "ca-certificates"]
NOTICES_PORT = 10588
"""Where the platform's own senders hand over their mail (alerts from Alertmanager on the
monitoring hosts, notices of sending holds from the panel on the web hosts): from those hosts only, with the platform's own sender addresses, to anyone;
scanned and signed like the operator's own mail. No login, so alerts about the mailstore (whose
Dovecot checks logins) still go out."""
SQL_TABLES = (
    "virtual_mailbox_domains",
    "virtual_mailbox_maps",
    "virtual_alias_maps",
    "sender_login_maps",
    "hosted_senders",
    "forwarding_loops",
)


def lmtp_destination_concurrency(deployment) -> int:
    """Deliveries per mailbox one mx makes at once: together the mx hosts stay within what
    Dovecot takes for one mailbox (lmtp_user_concurrency_limit), so a burst waits in the queue
    for seconds instead of being deferred for minutes."""
    limit = deployment.settings.mailstore.lmtp_user_concurrency
    return max(1, limit // len(deployment.hosts("mx")))


def dnsbl_sites(settings) -> list[str]:
    """postscreen_dnsbl_sites entries: zone[=filter]*weight."""
    return [
        f"{d.zone}{'=' + d.reply_filter if d.reply_filter else ''}*{d.weight}"
        for d in settings.mail.dnsbls
    ]


def takeover_hosts(deployment, host) -> list:
    """The mx nodes whose queue this node may deliver while they are dead."""
    if not deployment.clustered("mx"):
        return []
    return [other for other in deployment.hosts("mx") if other.name != host.name]


def takeover_data_directory(host_name: str) -> str:
    return f"/var/lib/postfix-{host_name}"


def config_files(deployment, host) -> list[ConfigFile]:
    return _config_files(deployment, host)[0]


def _config_files(deployment, host) -> tuple[list[ConfigFile], str]:
    """The main instance's files, and its main.cf as rendered (the takeover instances start
    from it)."""
    settings = deployment.settings
    env = settings.environment
    lookup = deployment.database_reader
    # Lookup tables are read by proxymap, which a reload restarts.
    lookups = [
        ConfigFile.template(
            "postfix",
            f"/etc/postfix/sql/{table}.cf",
            effect="reload",
            user="root",
            group="postfix",
            mode="640",
            db_uris=postgresql.reader_uris(lookup),
        )
        for table in SQL_TABLES
    ]
    main_cf = ConfigFile.template(
        "postfix",
        "/etc/postfix/main.cf",
        # inet_protocols and inet_interfaces take a restart.
        host_fqdn=env.host_fqdn(host.name),
        primary_domain=env.primary_domain,
        smtp_address_preference="any" if host.public_ipv6 else "ipv4",
        message_size_limit=settings.mail.message_size_limit_bytes,
        lmtp_host=dovecot.SERVICE_NAME,
        lmtp_port=dovecot.LMTP_PORT,
        quota_status_port=dovecot.QUOTA_STATUS_PORT,
        mailstore_addresses=deployment.addresses("mailstore"),
        srs_forward_port=postsrsd.FORWARD_PORT,
        srs_reverse_port=postsrsd.REVERSE_PORT,
        lmtp_destination_concurrency=lmtp_destination_concurrency(deployment),
        sasl_host=dovecot.SERVICE_NAME,
        sasl_port=dovecot.SASL_PORT,
        dnsbl_threshold=settings.mail.dnsbl_threshold,
        dnsbl_sites=dnsbl_sites(settings),
        greylisting=settings.mail.greylisting.enabled,
        outbound_limit=settings.mail.outbound_limit.enabled,
        policy_service=f"127.0.0.1:{settings.mail.policy_service.port}",
        milter=rspamd.MILTER,
        # Alertmanager on the monitoring hosts, the panel's notices from the web hosts.
        notice_clients=list(
            dict.fromkeys(deployment.monitoring_addresses + deployment.addresses("web"))
        ),
        notice_senders=[alert_sender(settings)],
        tls_certificate=certificates.CERTIFICATE,
        tls_key=certificates.PRIVATE_KEY,
        takeover_config_dirs=[
            pacemaker.takeover_config_dir(other.name) for other in takeover_hosts(deployment, host)
        ],
    )
    master_cf = ConfigFile.template(
        "postfix",
        "/etc/postfix/master.cf",
        private_ip=str(host.private_ip),
        sieve_submission_port=dovecot.SIEVE_SUBMISSION_PORT,
        notices_port=NOTICES_PORT,
    )
    order = ConfigFile.template(
        "postfix", "/etc/systemd/system/postfix.service.d/mailstack-order.conf"
    )
    utf8_senders = ConfigFile.template("postfix", "/etc/postfix/utf8_senders.pcre", effect="reload")
    return [*lookups, utf8_senders, main_cf, master_cf, order], main_cf.render()


LISTENER_PARAMETERS = (
    "mailstack_submission_",
    "mailstack_sieve_",
    "mailstack_mailstore_clients",
    "mailstack_notice",
)
"""main.cf's own parameters that only the main instance's listeners (master.cf: submission,
Sieve's listener and the alerts' notices listener) read; postconf would call them unused in a
takeover instance."""


def _without(main_cf: str, prefixes: tuple[str, ...]) -> str:
    """main.cf without the parameters whose names start with one of `prefixes` (each with its
    continuation lines)."""
    kept, skipping = [], False
    for line in main_cf.splitlines(keepends=True):
        if line[:1] not in (" ", "\t"):
            skipping = line.startswith(prefixes)
        if not skipping:
            kept.append(line)
    return "".join(kept)


def unit_files() -> list[ConfigFile]:
    """The takeover instances' units: a takeover instance runs only on its dead node's queue
    volume (Debian's postfix@.service runs /etc/postfix-<name>), and the flush after it."""
    return [
        ConfigFile.template(
            "postfix", TAKEOVER_GUARD, effect="none", queue_directory_prefix="/var/spool/postfix-"
        ),
        ConfigFile.template("postfix", f"/etc/systemd/system/{FLUSH_UNIT}", effect="none"),
    ]


def takeover_files(deployment, host) -> list[ConfigFile]:
    """For each other mx H: the Postfix instance that delivers H's queue from its volume here
    while H is dead (started by the cluster). Its main.cf is this node's own (same lookups,
    transports, TLS and milter, this node's name towards other servers) with the queue on H's
    volume; its master.cf has no listeners, so it only delivers."""
    main_cf = _without(_config_files(deployment, host)[1], LISTENER_PARAMETERS)
    files = []
    for other in takeover_hosts(deployment, host):
        name = f"postfix-{other.name}"
        directory = pacemaker.takeover_config_dir(other.name)
        overrides = (
            f"\n# A takeover instance: delivers {other.name}'s queue from its volume while "
            f"{other.name} is dead.\n"
            f"queue_directory = {pacemaker.takeover_queue(other.name)}\n"
            f"data_directory = {takeover_data_directory(other.name)}\n"
            f"syslog_name = {name}\n"
        )
        files += [
            ConfigFile.literal(f"{directory}/main.cf", main_cf + overrides),
            ConfigFile(
                path=f"{directory}/master.cf",
                source="postfix/etc/postfix-takeover/master.cf",
            ),
        ]
    return files


def takeover_check(deployment, host) -> str:
    """postconf's reading of every takeover instance's files (warnings fail it, as in CHECK)."""
    return " && ".join(
        f"! postconf -c {pacemaker.takeover_config_dir(other.name)} -n 2>&1 >/dev/null | grep ."
        for other in takeover_hosts(deployment, host)
    )
