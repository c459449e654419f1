"""rspamd on the mx hosts: Postfix's milter, scanning every message before it is accepted.

Bayes statistics, fuzzy hashes and caches live in the shared Valkey; the fuzzy storage worker on
each mx writes there, so a specimen learned on one mx is known to all. ClamAV (roles/clamav.py)
is asked through the antivirus module; a failed virus scan makes the sender retry. Outbound mail
from the operator's domains is DKIM-signed with keys from the environment's secrets.
"""

import io

from pyinfra import host, inventory
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from mailstack import keyvalue, spamfilter
from mailstack.deploying import group_hosts, secrets, settings
from mailstack.dkim import domain_keys

config = settings(host)
spam = config.mail.spam
store = secrets(host)
dkim_keys = domain_keys(config, store)
valkey_host = keyvalue.server([member["private_ip"] for member in group_hosts(inventory, "db")])

apt.packages(name="Install rspamd", packages=["rspamd"], update=True, cache_time=3600)

context = {
    "milter_port": spamfilter.MILTER_PORT,
    "scanner_port": spamfilter.SCANNER_PORT,
    "controller_port": spamfilter.CONTROLLER_PORT,
    "controller_password": store.get("rspamd_controller_password"),
    "fuzzy_port": spamfilter.FUZZY_PORT,
    "fuzzy_expire_days": spam.fuzzy_expire_days,
    "public_fuzzy": spam.public_fuzzy,
    "scan_timeout": spam.scan_timeout_seconds,
    "valkey_host": valkey_host,
    "valkey_port": keyvalue.PORT,
    "valkey_password": store.get(keyvalue.PASSWORD_SECRET),
    "bayes_min_learns": spam.bayes_min_learns,
    "bayes_autolearn": spam.bayes_autolearn,
    "reject_score": spam.reject_score,
    "add_header_score": spam.add_header_score,
    "max_scan_bytes": config.mail.antivirus.max_scan_mib * 1024 * 1024,
    "phishing_feeds": spam.phishing_feeds,
    "blocklists": spamfilter.blocklist_rules(spam),
    "dkim_keys": dkim_keys,
    "key_dir": spamfilter.DKIM_KEY_DIR,
}
LOCAL = (
    "options.inc",
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
    "groups.conf",
)
OVERRIDE = ("rbl.conf", "fuzzy_check.conf")
configuration = [
    files.template(
        name=f"rspamd {directory}/{name}",
        src=f"templates/rspamd/etc/rspamd/{directory}/{name}.j2",
        dest=f"/etc/rspamd/{directory}/{name}",
        user="root",
        group="_rspamd",
        # Some hold the Valkey and controller passwords.
        mode="640",
        **context,
    )
    for directory, names in (("local.d", LOCAL), ("override.d", OVERRIDE))
    for name in names
]

files.directory(
    name="DKIM key directory",
    path=spamfilter.DKIM_KEY_DIR,
    user="_rspamd",
    group="_rspamd",
    mode="700",
)
keys = [
    files.put(
        name=f"DKIM key of {key.domain} ({key.selector})",
        src=io.StringIO(key.private_pem),
        dest=f"{spamfilter.DKIM_KEY_DIR}/{key.domain}.{key.selector}.key",
        user="_rspamd",
        group="_rspamd",
        mode="600",
    )
    for key in dkim_keys
]

systemd.service(name="Run rspamd", service="rspamd", running=True, enabled=True)
systemd.service(
    name="Restart rspamd for its new configuration",
    service="rspamd",
    restarted=True,
    _if=any_changed(*configuration, *keys),
)
