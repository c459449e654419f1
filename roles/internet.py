"""The lab's internet (lab only): authoritative DNS for every lab zone (NSD), a foreign peer MTA
(Postfix) and Pebble, the ACME test server standing in for Let's Encrypt."""

from pyinfra import host
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from mailstack.deploying import lab_pki_dir, lab_state, secrets, settings
from mailstack.dkim import domain_keys
from mailstack.lab.zones import lab_zones

state = lab_state(host)
lab = state.lab
config = settings(host)
zones = lab_zones(config, state, domain_keys(config, secrets(host)))
addresses = {
    "address": str(state.internet_address),
    "listed_address": str(state.listed_address),
    "peer_domain": lab.peer_domain,
}

apt.packages(
    name="Install DNS server, MTA (with a DKIM verifier) and ACME test server",
    packages=["nsd", "postfix", "python3-dkim", "pebble"],
    update=True,
    cache_time=3600,
)

# --- DNS ---------------------------------------------------------------------------------------
dns_files = [
    files.template(
        name="Configure NSD",
        src="templates/internet/etc/nsd/nsd.conf.j2",
        dest="/etc/nsd/nsd.conf",
        mode="644",
        zones=zones,
        **addresses,
    )
]
for zone in zones:
    dns_files.append(
        files.template(
            name=f"Zone {zone.name}",
            src="templates/internet/etc/nsd/zones/zone.j2",
            dest=f"/etc/nsd/zones/{zone.name}.zone",
            mode="644",
            zone=zone,
            services_domain=lab.services_domain,
        )
    )
systemd.service(name="Run NSD", service="nsd", running=True, enabled=True)
systemd.service(
    name="Restart NSD for its new zones",
    service="nsd",
    restarted=True,
    _if=any_changed(*dns_files),
)

# --- peer MTA ----------------------------------------------------------------------------------
# 2700: the directory inherits /var/mail's setgid bit, which chmod 700 keeps.
files.directory(name="Peer mailbox", path="/var/mail/peer", user="mail", group="mail", mode="2700")
postfix_config = files.template(
    name="Configure the peer MTA",
    src="templates/internet/etc/postfix/main.cf.j2",
    dest="/etc/postfix/main.cf",
    mode="644",
    **addresses,
)
systemd.service(name="Run the peer MTA", service="postfix", running=True, enabled=True)
systemd.service(
    name="Restart the peer MTA for its new configuration",
    service="postfix",
    # inet_interfaces and inet_protocols take a restart.
    restarted=True,
    _if=any_changed(postfix_config),
)

# --- ACME --------------------------------------------------------------------------------------
pebble_files = [
    files.put(
        name=f"Pebble's TLS {part} (from the lab CA)",
        src=str(lab_pki_dir(host) / f"acme.{suffix}"),
        dest=f"/etc/pebble/tls/acme.{suffix}",
        mode=mode,
    )
    for part, suffix, mode in (("certificate", "pem", "644"), ("key", "key", "600"))
]
pebble_files.append(
    files.template(
        name="Configure Pebble",
        src="templates/internet/etc/pebble/pebble-config.json.j2",
        dest="/etc/pebble/pebble-config.json",
        mode="644",
        **addresses,
    )
)
pebble_unit = files.template(
    name="Pebble service",
    src="templates/internet/etc/systemd/system/pebble.service.j2",
    dest="/etc/systemd/system/pebble.service",
    mode="644",
    **addresses,
)
systemd.daemon_reload(name="Load the Pebble unit", _if=any_changed(pebble_unit))
systemd.service(name="Run Pebble", service="pebble", running=True, enabled=True)
systemd.service(
    name="Restart Pebble for its new configuration",
    service="pebble",
    restarted=True,
    _if=any_changed(pebble_unit, *pebble_files),
)
