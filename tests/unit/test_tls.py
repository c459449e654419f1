"""Which names each host orders by ACME, how port 80 reaches it, what certbot's state says."""

import subprocess
from pathlib import Path

import pytest

from mailstack.facts import CertbotLineage
from mailstack.services import certificates as tls
from mailstack.settings import load_stack_file
from mailstack.settings.plan import LOAD_BALANCER_PURPOSES, plan_hosts
from mailstack.topology import port80_forwards

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))


def stack(name: str):
    return load_stack_file(ROOT / "stacks" / f"Pulumi.{name}.yaml")


def test_production_orders_the_mail_names_and_leaves_https_to_the_balancer():
    settings = stack("production")
    env = settings.environment
    assert settings.dns.managed_zone
    assert tls.acme_names(settings, ("mx",)) == [env.hostname("mx"), env.hostname("submission")]
    assert tls.acme_names(settings, ("mailstore",)) == [env.hostname("mail")]
    # The HTTP balancer terminates TLS with a Hetzner-managed certificate.
    assert tls.acme_names(settings, ("web",)) == []
    assert tls.acme_names(settings, ("db",)) == []


def test_a_single_host_orders_every_name_it_serves():
    settings = stack("staging")
    (host,) = plan_hosts(settings)
    names = tls.acme_names(settings, host.roles)
    assert names == tls.certificate_names(settings, host.roles)
    domains = settings.environment.mail_domains
    assert names[-len(domains) :] == [f"mta-sts.{domain}" for domain in domains]


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_port_80_reaches_every_host_the_same_way(path):
    """One nginx listener answers on port 80, so every balancer must speak to it alike."""
    settings = load_stack_file(path)
    for host in plan_hosts(settings):
        forwards = port80_forwards(settings, host.roles)
        assert {forward.proxy_protocol for forward in forwards} <= {True}, host.name
        if tls.acme_names(settings, host.roles):
            assert forwards, host.name


def test_without_http_01_no_balancer_forwards_port_80_to_the_mail_nodes():
    data = stack("production").model_dump(mode="json")
    data["tls"]["acme"]["challenge"] = "dns-01"
    settings = type(stack("production")).model_validate(data)
    assert all(port80_forwards(settings, (role,)) == [] for role in ("mx", "mailstore"))
    assert tls.acme_names(settings, ("mx",)) == []
    assert len(LOAD_BALANCER_PURPOSES) == 3


def test_services_reloaded_with_a_new_certificate_follow_the_roles():
    assert tls.services_using_certificate(("mx",)) == ["postfix"]
    assert tls.services_using_certificate(("mx", "mailstore", "web", "db")) == [
        "postfix",
        "dovecot",
        "nginx",
    ]
    assert tls.services_using_certificate(("db",)) == []


def fact(output: str):
    return CertbotLineage().process(output.splitlines())


def test_certbot_lineage_reads_names_server_window_and_installation():
    lineage = fact(
        "names=DNS:mx.example.net, DNS:smtp.example.net\n"
        "server=https://acme.example/dir\n"
        "renew_before_expiry=30 days\n"
        "installed=yes\n"
        "fresh=yes\n"
    )
    assert lineage.names == frozenset({"mx.example.net", "smtp.example.net"})
    assert lineage.server == "https://acme.example/dir"
    assert lineage.renew_before_expiry == "30 days"
    assert lineage.installed and lineage.fresh


def test_certbot_lineage_before_the_first_order_and_with_the_window_unset():
    assert fact("") is None
    lineage = fact(
        "names=DNS:mail.example.net\nserver=x\nrenew_before_expiry=\ninstalled=no\nfresh=no\n"
    )
    assert lineage.renew_before_expiry == "" and not lineage.installed and not lineage.fresh


def test_certbot_lineage_knows_whether_it_chains_to_the_published_root():
    base = "names=DNS:mx.example.net\nserver=x\nrenew_before_expiry=30 days\ninstalled=yes\n"
    assert fact(base + "fresh=yes\nroot=current\n").current_root
    assert not fact(base + "fresh=yes\nroot=other\n").current_root
    # No root published (Let's Encrypt), or the ACME server did not answer: nothing to reorder.
    assert fact(base + "fresh=yes\n").current_root


def make_ca(directory, name: str, issuer: str | None = None) -> None:
    """A CA certificate and key `name`.pem/.key in `directory`, self-signed or under `issuer`."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
    signer = ["-signkey", f"{name}.key"] if issuer is None else [
        "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key", "-CAcreateserial"]  # fmt: skip
    extensions = directory / f"{name}.ext"
    extensions.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-days", "30", *signer,
            "-extfile", extensions.name, "-out", f"{name}.pem")  # fmt: skip


def test_the_root_check_tells_a_certificate_of_the_current_root_from_an_earlier_ones(tmp_path):
    """The fact's own shell, run here on a certbot tree in a temporary directory."""
    make_ca(tmp_path, "old-root")
    make_ca(tmp_path, "new-root")
    make_ca(tmp_path, "old-intermediate", issuer="old-root")
    make_ca(tmp_path, "leaf", issuer="old-intermediate")
    live = tmp_path / "letsencrypt/live/platform"
    live.mkdir(parents=True)
    (live / "cert.pem").write_text((tmp_path / "leaf.pem").read_text())
    (live / "chain.pem").write_text((tmp_path / "old-intermediate.pem").read_text())
    (live / "fullchain.pem").write_text(
        (live / "cert.pem").read_text() + (live / "chain.pem").read_text()
    )

    def lineage(root_url: str | None):
        command = CertbotLineage().command("platform", str(live / "cert.pem"), 1, root_url=root_url)
        command = command.replace("/etc/letsencrypt", str(tmp_path / "letsencrypt"))
        output = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
        return fact(output)

    assert lineage(f"file://{tmp_path}/old-root.pem").current_root
    assert not lineage(f"file://{tmp_path}/new-root.pem").current_root
    assert lineage(f"file://{tmp_path}/nothing-published-here.pem").current_root
    assert lineage(None).current_root
