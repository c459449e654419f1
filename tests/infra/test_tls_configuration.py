"""TLS on the hosts as configured: TLS 1.2 or newer on every mail service, a current certificate
for each host's names at the paths the services read, and the machinery that renews it."""

import re

from mailstack.services import certificates as tls


def test_postfix_speaks_tls_1_2_or_newer_only(hosts):
    for _host, remote in hosts["mx"]:
        for parameter in ("smtpd_tls_protocols", "smtpd_tls_mandatory_protocols"):
            assert remote.check_output(f"postconf -h {parameter}") == ">=TLSv1.2", parameter
        # No service in master.cf lowers it.
        overrides = remote.check_output("postconf -P")
        assert not re.search(r"tls_(mandatory_)?protocols=(?!>=TLSv1\.[23])", overrides)
        assert tls.CERTIFICATE in remote.check_output("postconf -h smtpd_tls_chain_files")


def test_dovecot_speaks_tls_1_2_or_newer_only(hosts):
    for _host, remote in hosts["mailstore"]:
        assert remote.check_output("doveconf -h ssl_min_protocol") in ("TLSv1.2", "TLSv1.3")
        assert remote.check_output("doveconf -h ssl") == "required"
        # Dovecot 2.4 shows the file settings in an ssl_server block.
        assert f"cert_file = {tls.CERTIFICATE}" in remote.check_output("doveconf -n")


def test_each_host_holds_a_current_certificate_for_its_names(hosts, inventory):
    settings = inventory.settings()
    for role in ("mx", "mailstore", "web"):
        for host, remote in hosts[role]:
            names = tls.certificate_names(settings, host.roles)
            san = remote.check_output(
                f"openssl x509 -in {tls.CERTIFICATE} -noout -ext subjectAltName"
            )
            assert set(re.findall(r"DNS:([^,\s]+)", san)) >= set(names), host.name
            # At least as long as the renewal window, so the timer has time to act.
            days = settings.tls.acme.renew_days_before_expiry if settings.tls.acme else 1
            valid = remote.run(
                f"openssl x509 -in {tls.CERTIFICATE} -noout -checkend {days * 86400}"
            )
            assert valid.rc == 0, f"{host.name}: expires within {days} days"
            key = remote.file(tls.PRIVATE_KEY)
            assert (key.user, key.mode) == ("root", 0o600), host.name


def test_acme_renewal_is_scheduled_and_challenges_are_served(hosts, inventory):
    settings = inventory.settings()
    if settings.tls.mode != "acme":
        return
    for role in ("mx", "mailstore", "web"):
        for host, remote in hosts[role]:
            if not tls.acme_names(settings, host.roles):
                continue
            timer = remote.service("certbot.timer")
            assert timer.is_enabled and timer.is_running, host.name
            assert remote.socket(f"tcp://{host.private_ip}:80").is_listening, host.name
            # Port 80 only on the private address.
            assert not remote.socket("tcp://0.0.0.0:80").is_listening, host.name
            conf = remote.file(f"/etc/letsencrypt/renewal/{tls.ACME_CERT_NAME}.conf")
            assert conf.contains(f"^renew_hook = {tls.INSTALL_SCRIPT}$"), host.name
