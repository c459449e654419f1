"""ACME certificates (tls.mode 'acme', http-01): certbot orders and renews each host's
certificate; nginx (roles/nginx.py) answers the challenges on port 80 (mailstack.services.acme).

Runs after the services, which start with roles/certificates.py's bootstrap certificate: a
failed order fails this host's deploy with certbot's error, after everything else is in place.
certbot's deploy hook (mailstack.services.certificates.INSTALL_SCRIPT) installs each new
certificate at the services' paths and reloads them; certbot's systemd timer renews within the
settings' window. The same path runs in production (Let's Encrypt) and in the lab (Pebble).
"""

from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.operations import files, server, systemd

from mailstack.deploy.kit import packages, target
from mailstack.facts import CertbotLineage
from mailstack.services import acme, certificates

deployment, me = target()
settings = deployment.settings
if settings.tls.mode == "acme" and settings.tls.acme.challenge != "http-01":
    raise SystemExit(
        f"tls.acme.challenge: {settings.tls.acme.challenge} is not supported by the deploy yet"
    )
# Names of the roles whose balancer forwards port 80 here (none for web nodes behind a
# balancer that terminates TLS with a Hetzner-managed certificate).
names = acme.challenge_names(deployment, me)

if names:
    account = settings.tls.acme
    window = f"{account.renew_days_before_expiry} days"
    live_dir = f"/etc/letsencrypt/live/{certificates.ACME_CERT_NAME}"
    renewal_conf = f"/etc/letsencrypt/renewal/{certificates.ACME_CERT_NAME}.conf"

    packages("certbot", ["certbot"], no_recommends=True)
    # Made here, so certbot, which removes the directories it made itself, leaves it in place.
    files.directory(
        name="Create the challenge webroot",
        path=f"{certificates.ACME_WEBROOT}/.well-known/acme-challenge",
        mode="755",
    )

    lineage = host.get_fact(
        CertbotLineage,
        cert_name=certificates.ACME_CERT_NAME,
        installed_at=certificates.CERTIFICATE,
        window_days=account.renew_days_before_expiry,
        root_url=account.root_certificate_url,
    )
    # A certificate for other names, from another ACME server, under a root it no longer
    # publishes or due for renewal is ordered anew; a current one is kept (so a second deploy
    # changes nothing).
    order = (
        lineage is None
        or lineage.names != frozenset(names)
        or lineage.server != account.directory_url
        or not lineage.current_root
        or not lineage.fresh
    )
    if lineage is not None and not lineage.current_root:
        # An ACME server that issues under a new root was reset (the lab's Pebble at each
        # start): what it issued before and the account certbot registered are gone with it.
        server.shell(
            name="Forget the certificate and account of the ACME server's earlier root",
            commands=[
                f"flock {acme.CERTBOT_LOCK} certbot delete --non-interactive"
                f" --cert-name {certificates.ACME_CERT_NAME}",
                f"rm -rf /etc/letsencrypt/accounts/{urlsplit(account.directory_url).netloc}",
            ],
        )
    if order:
        server.shell(
            name=f"Order a certificate for {', '.join(names)}",
            commands=[
                f"flock {acme.CERTBOT_LOCK} certbot certonly --non-interactive --agree-tos"
                f" --email {account.contact_email} --server {account.directory_url}"
                f" --webroot --webroot-path {certificates.ACME_WEBROOT}"
                f" --cert-name {certificates.ACME_CERT_NAME} --domains {','.join(names)}"
                f" --deploy-hook {certificates.INSTALL_SCRIPT} --force-renewal"
            ],
        )
    elif not lineage.installed:
        server.shell(
            name="Install the current certificate and reload its services",
            commands=[f"{certificates.INSTALL_SCRIPT} {live_dir}"],
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
