"""ACME certificates (tls.mode 'acme', http-01): certbot orders and renews each host's
certificate, nginx answers the challenges on port 80.

Runs after the services, which start with roles/certificates.py's bootstrap certificate: a
failed order fails this host's deploy with certbot's error, after everything else is in place.
certbot's deploy hook (mailstack.tls.INSTALL_SCRIPT) installs each new certificate at the
services' paths and reloads them; certbot's systemd timer renews within the settings' window.
The same path runs in production (Let's Encrypt) and in the lab (Pebble).
"""

from pyinfra import host, inventory
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from mailstack import tls
from mailstack.deploying import group_hosts, load_balancer_ips, settings
from mailstack.facts import CertbotLineage
from mailstack.topology import port80_forwards

config = settings(host)
roles = host.data.roles
acme = config.tls.acme
# Names of the roles whose balancer forwards port 80 here (none for web nodes behind a
# balancer that terminates TLS with a Hetzner-managed certificate).
names = tls.acme_names(config, roles) if config.tls.mode == "acme" else []
if config.tls.mode == "acme" and acme.challenge != "http-01":
    raise SystemExit(f"tls.acme.challenge: {acme.challenge} is not supported by the deploy yet")

if names:
    forwards = port80_forwards(config, roles)
    if len({forward.proxy_protocol for forward in forwards}) > 1:
        raise SystemExit(f"{host.name}: balancers forward port 80 here with and without PROXY")
    my_ip = host.data.private_ip
    peers = list(
        dict.fromkeys(
            member["private_ip"]
            for role in roles
            if port80_forwards(config, [role])
            for member in group_hosts(inventory, role)
            if member["private_ip"] != my_ip
        )
    )
    window = f"{acme.renew_days_before_expiry} days"
    live_dir = f"/etc/letsencrypt/live/{tls.ACME_CERT_NAME}"
    renewal_conf = f"/etc/letsencrypt/renewal/{tls.ACME_CERT_NAME}.conf"

    apt.packages(
        name="Install certbot and nginx for the challenges",
        packages=["certbot", "nginx"],
        no_recommends=True,
        update=True,
        cache_time=3600,
    )

    # Made here, so certbot, which removes the directories it made itself, leaves it in place.
    files.directory(
        name="Create the challenge webroot",
        path=f"{tls.ACME_WEBROOT}/.well-known/acme-challenge",
        mode="755",
    )
    # Debian's default site listens on every address; port 80 answers challenges only.
    default_site = files.link(
        name="Disable nginx's default site", path="/etc/nginx/sites-enabled/default", present=False
    )
    challenge_site = files.template(
        name="Serve ACME challenges, this node's and its peers'",
        src="templates/acme/etc/nginx/conf.d/mailstack-acme.conf.j2",
        dest="/etc/nginx/conf.d/mailstack-acme.conf",
        mode="644",
        private_ip=my_ip,
        peers=peers,
        peer_port=tls.ACME_PEER_PORT,
        proxy_protocol=any(forward.proxy_protocol for forward in forwards),
        load_balancer_ips=load_balancer_ips(host),
        webroot=tls.ACME_WEBROOT,
        redirect_to_https="web" in roles,
    )
    systemd.service(
        name="Run nginx",
        service="nginx",
        running=True,
        enabled=True,
    )
    systemd.service(
        name="Restart nginx for its new configuration",
        service="nginx",
        # Not a reload: nginx cannot bind the private address while its old socket on every
        # address (the default site's) is still open.
        restarted=True,
        _if=any_changed(default_site, challenge_site),
    )

    lineage = host.get_fact(
        CertbotLineage,
        cert_name=tls.ACME_CERT_NAME,
        installed_at=tls.CERTIFICATE,
        window_days=acme.renew_days_before_expiry,
    )
    # A certificate for other names, from another ACME server or due for renewal is ordered
    # anew; a current one is kept (so a second deploy changes nothing).
    order = (
        lineage is None
        or lineage.names != frozenset(names)
        or lineage.server != acme.directory_url
        or not lineage.fresh
    )
    if order:
        server.shell(
            name=f"Order a certificate for {', '.join(names)}",
            commands=[
                "certbot certonly --non-interactive --agree-tos"
                f" --email {acme.contact_email} --server {acme.directory_url}"
                f" --webroot --webroot-path {tls.ACME_WEBROOT}"
                f" --cert-name {tls.ACME_CERT_NAME} --domains {','.join(names)}"
                f" --deploy-hook {tls.INSTALL_SCRIPT} --force-renewal"
            ],
        )
    elif not lineage.installed:
        server.shell(
            name="Install the current certificate and reload its services",
            commands=[f"{tls.INSTALL_SCRIPT} {live_dir}"],
        )
    if order or lineage.renew_before_expiry != window:
        # certbot keeps this line across renewals; it writes it commented out with a new order.
        files.replace(
            name=f"Renew {window} before expiry",
            path=renewal_conf,
            text=r"^#\? *renew_before_expiry *=.*",
            replace=f"renew_before_expiry = {window}",
        )
    systemd.service(
        name="Renew certificates with certbot's timer",
        service="certbot.timer",
        running=True,
        enabled=True,
    )
