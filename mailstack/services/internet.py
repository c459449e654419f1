"""The lab's internet (lab only): authoritative DNS for every lab zone (NSD), a foreign peer MTA
(Postfix), Pebble, the ACME test server standing in for Let's Encrypt, and an SFTP account
standing in for a Storage Box, the backups' target."""

from mailstack.deploy.configfile import ConfigFile
from mailstack.dkim import domain_keys

PEER_POSTFIX_CHECK = "postfix check"
PEBBLE_CHECK = "python3 -m json.tool /etc/pebble/pebble-config.json >/dev/null"
PEER_MAILDIR = "/var/mail/peer"
PACKAGES = ["nsd", "postfix", "python3-dkim", "pebble"]
STORAGE_HOME = "/srv/storage"
"""The backup account's home: its SFTP root (root's own, as sshd's chroot requires)."""
STORAGE_KEYS = "/etc/ssh/storage_authorized_keys"
SSHD_CHECK = "sshd -t"


def _addresses(state) -> dict:
    return {
        "address": str(state.internet_address),
        "listed_address": str(state.listed_address),
        "peer_domain": state.lab.peer_domain,
    }


def zones(deployment):
    from mailstack.lab.zones import lab_zones

    settings = deployment.settings
    return lab_zones(settings, deployment.lab_state, domain_keys(settings, deployment.secrets))


def nsd_check(deployment) -> str:
    """nsd-checkconf for the configuration, nsd-checkzone for each zone file."""
    return " && ".join(
        ["nsd-checkconf /etc/nsd/nsd.conf"]
        + [
            f"nsd-checkzone {z.origin} /etc/nsd/zones/{z.file_name} >/dev/null"
            for z in zones(deployment)
        ]
    )


def nsd_files(deployment, host) -> list[ConfigFile]:
    state = deployment.lab_state
    served = zones(deployment)
    return [
        ConfigFile.template("internet", "/etc/nsd/nsd.conf", zones=served, **_addresses(state))
    ] + [
        ConfigFile(
            path=f"/etc/nsd/zones/{zone.file_name}",
            source="internet/etc/nsd/zones/zone.j2",
            context={"zone": zone, "services_domain": state.lab.services_domain},
        )
        for zone in served
    ]


def peer_mta_files(deployment, host) -> list[ConfigFile]:
    # inet_interfaces and inet_protocols take a restart.
    return [
        ConfigFile.template("internet", "/etc/postfix/main.cf", **_addresses(deployment.lab_state))
    ]


def pebble_files(deployment, host) -> list[ConfigFile]:
    state = deployment.lab_state
    pki = deployment.lab_pki_dir
    return [
        ConfigFile.literal(
            f"/etc/pebble/tls/acme.{suffix}", (pki / f"acme.{suffix}").read_text(), mode=mode
        )
        for suffix, mode in (("pem", "644"), ("key", "600"))
    ] + [
        ConfigFile.template("internet", "/etc/pebble/pebble-config.json", **_addresses(state)),
        ConfigFile.template("internet", "/etc/systemd/system/pebble.service", **_addresses(state)),
    ]


def config_files(deployment, host) -> list[ConfigFile]:
    return (
        nsd_files(deployment, host)
        + peer_mta_files(deployment, host)
        + pebble_files(deployment, host)
        + storage_files(deployment, host)
    )


def storage_files(deployment, host) -> list[ConfigFile]:
    """sshd's SFTP-only account for the environment's backup key (backups.target of the lab's
    settings) and the lab's admin key, standing in for the operator's own login to a Storage
    Box (which fetches the secrets' off-site copy): locked in its home, no shell, no
    forwarding."""
    from mailstack.lab.hosts import STORAGE_ACCOUNT
    from mailstack.services import backup

    key = backup.ssh_public_key(deployment.secrets, deployment.settings.environment.name)
    return [
        ConfigFile.template(
            "internet",
            "/etc/ssh/sshd_config.d/storage.conf",
            effect="reload",
            account=STORAGE_ACCOUNT,
            home=STORAGE_HOME,
            authorized_keys=STORAGE_KEYS,
        ),
        ConfigFile.literal(
            STORAGE_KEYS,
            "\n".join([key, *deployment.settings.environment.admin_ssh_keys]) + "\n",
            effect="reload",
        ),
    ]
