"""Postfix on the mx hosts: postscreen and smtpd for inbound mail, submission on 587 and 465.

Hosted domains, mailboxes and forwardings are SQL lookups in the panel's views; delivery is LMTP
into Dovecot on the mailstore pair; SASL is Dovecot's auth service there. rspamd (the milter that
scans every message before it is accepted) and the policy service (greylisting, the outbound
limit) are asked by smtpd on every mx host.
"""

from pyinfra import host, inventory
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from mailstack import database, spamfilter, tls
from mailstack.deploying import (
    LMTP_USER_CONCURRENCY,
    MAILSTORE_SASL_PORT,
    group_hosts,
    secrets,
    settings,
)

config = settings(host)
env = config.environment
mailstores = group_hosts(inventory, "mailstore")
db_hosts = [member["private_ip"] for member in group_hosts(inventory, "db")]
# Both mailstore nodes answer to one name; only the active one runs Dovecot.
MAILSTORE_NAME = "mailstore.private"
SQL_TABLES = (
    "virtual_mailbox_domains",
    "virtual_mailbox_maps",
    "virtual_alias_maps",
    "sender_login_maps",
)

apt.packages(
    name="Install Postfix with PostgreSQL lookups",
    packages=["postfix", "postfix-pgsql", "ca-certificates"],
    update=True,
    cache_time=3600,
)

hosts_file = files.block(
    name="Name the mailstore pair for LMTP and SASL",
    path="/etc/hosts",
    content=[f"{member['private_ip']} {MAILSTORE_NAME}" for member in mailstores],
    marker="# {mark} mailstack mailstore",
)

# The panel's views through the read-only lookup role (docs/accounts.md).
lookup_database = {
    "db_hosts": db_hosts,
    "db_port": database.PORT,
    "db_name": database.DATABASE,
    "db_user": database.LOOKUP_USER,
    "db_password": secrets(host).get("db_lookup_password"),
}
lookups = [
    files.template(
        name=f"Look up {table.replace('_', ' ')} in PostgreSQL",
        src=f"templates/postfix/etc/postfix/sql/{table}.cf.j2",
        dest=f"/etc/postfix/sql/{table}.cf",
        user="root",
        group="postfix",
        mode="640",
        create_remote_dir=True,
        **lookup_database,
    )
    for table in SQL_TABLES
]

dnsbl_sites = [
    f"{d.zone}{'=' + d.reply_filter if d.reply_filter else ''}*{d.weight}"
    for d in config.mail.dnsbls
]
main_cf = files.template(
    name="Configure Postfix",
    src="templates/postfix/etc/postfix/main.cf.j2",
    dest="/etc/postfix/main.cf",
    mode="644",
    host_fqdn=env.host_fqdn(host.data.name),
    primary_domain=env.primary_domain,
    inet_protocols="all" if host.data.get("public_ipv6") else "ipv4",
    message_size_limit=config.mail.message_size_limit_bytes,
    lmtp_host=MAILSTORE_NAME,
    lmtp_user_concurrency=max(1, LMTP_USER_CONCURRENCY // len(group_hosts(inventory, "mx"))),
    sasl_host=MAILSTORE_NAME,
    sasl_port=MAILSTORE_SASL_PORT,
    dnsbl_threshold=config.mail.dnsbl_threshold,
    dnsbl_sites=dnsbl_sites,
    greylisting=config.mail.greylisting.enabled,
    outbound_limit=config.mail.outbound_limit.enabled,
    policy_service=f"127.0.0.1:{config.mail.policy_service.port}",
    milter=spamfilter.MILTER,
    tls_certificate=tls.CERTIFICATE,
    tls_key=tls.PRIVATE_KEY,
)
master_cf = files.template(
    name="Configure Postfix services",
    src="templates/postfix/etc/postfix/master.cf.j2",
    dest="/etc/postfix/master.cf",
    mode="644",
    private_ip=host.data.private_ip,
)

systemd.service(name="Run Postfix", service="postfix", running=True, enabled=True)
systemd.service(
    name="Restart Postfix for its new configuration",
    service="postfix",
    # master.cf listeners take a restart; a reload would do for the rest.
    restarted=True,
    _if=any_changed(main_cf, master_cf, hosts_file, *lookups),
)
