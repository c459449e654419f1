"""Dovecot 2.4 on the mailstore pair: IMAP, POP3, ManageSieve, LMTP and SASL for Postfix.

Both nodes carry the identical configuration and keep all mail under one mount point (the
mail volume that moves to the survivor), so whichever node holds the volume can serve.
"""

from pyinfra import host, inventory
from pyinfra.operations import apt, files, server, systemd

from mailstack import database, tls
from mailstack.deploying import (
    LMTP_USER_CONCURRENCY,
    MAILSTORE_SASL_PORT,
    group_hosts,
    load_balancer_ips,
    secrets,
    settings,
)

config = settings(host)
db_hosts = [member["private_ip"] for member in group_hosts(inventory, "db")]
MAIL_ROOT = "/srv/mail"
# Fixed, so the files on the mail volume belong to the same user on either node.
VMAIL_UID = 5000

apt.packages(
    name="Install Dovecot",
    packages=[
        "dovecot-core",
        "dovecot-imapd",
        "dovecot-pop3d",
        "dovecot-lmtpd",
        "dovecot-pgsql",
        "dovecot-sieve",
        "dovecot-managesieved",
    ],
    update=True,
    cache_time=3600,
)

server.group(name="Create the vmail group", group="vmail", system=True, gid=VMAIL_UID)
server.user(
    name="Create the vmail user that owns all mail",
    user="vmail",
    uid=VMAIL_UID,
    group="vmail",
    home=MAIL_ROOT,
    shell="/usr/sbin/nologin",
    system=True,
    create_home=False,
)
files.directory(
    name="Create the mail root", path=MAIL_ROOT, user="vmail", group="vmail", mode="750"
)

auth_sql = files.template(
    name="Look up passwords and users in PostgreSQL",
    src="templates/dovecot/etc/dovecot/conf.d/auth-sql.conf.ext.j2",
    dest="/etc/dovecot/conf.d/auth-sql.conf.ext",
    user="root",
    group="dovecot",
    mode="640",
    db_hosts=db_hosts,
    db_port=database.PORT,
    db_name=database.DATABASE,
    db_user=database.LOOKUP_USER,
    db_password=secrets(host).get("db_lookup_password"),
    mail_root=MAIL_ROOT,
)
quota_mib = config.mail.default_quota_mib
dovecot_conf = files.template(
    name="Configure Dovecot",
    src="templates/dovecot/etc/dovecot/dovecot.conf.j2",
    dest="/etc/dovecot/dovecot.conf",
    user="root",
    group="dovecot",
    mode="640",
    private_ip=host.data.private_ip,
    load_balancer_ips=load_balancer_ips(host),
    mail_root=MAIL_ROOT,
    vmail_uid=VMAIL_UID,
    tls_certificate=tls.CERTIFICATE,
    tls_key=tls.PRIVATE_KEY,
    default_quota=f"{quota_mib}M" if quota_mib else "unlimited",
    quota_tempfail=config.mail.quota_exceeded == "defer",
    sasl_port=MAILSTORE_SASL_PORT,
    lmtp_user_concurrency=LMTP_USER_CONCURRENCY,
    primary_domain=config.environment.primary_domain,
)

# The first node holds the mail volume and serves; the other stands by with Dovecot stopped
# until a failover moves the volume and starts it there.
active = host.data.name == group_hosts(inventory, "mailstore")[0]["name"]
systemd.service(
    name="Run Dovecot on the active node only", service="dovecot", running=active, enabled=active
)
systemd.service(
    name="Restart Dovecot for its new configuration",
    service="dovecot",
    restarted=True,
    _if=lambda: active and (dovecot_conf.did_change() or auth_sql.did_change()),
)
