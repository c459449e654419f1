"""The lab's stand-ins for what Hetzner and the internet provide, on the deployed test lab."""

import shlex
import time
from urllib.parse import urlsplit

import pytest
from lab_probes import balancer_status

from mailstack.debian import debian_mirror
from mailstack.testing.clusters import wait_until_fenced

pytestmark = pytest.mark.lab


def resolve(lab, host: str, name: str) -> str:
    return lab.ssh(lab.host(host), f"getent ahostsv4 {shlex.quote(name)} | head -1").stdout


def test_hosts_resolve_the_lab_zones_through_the_lab_dns(lab):
    state = lab.state()
    smtp = next(lb.private_ip for lb in lab.inventory().load_balancers if lb.purpose == "smtp")
    assert resolve(lab, "mx1", "mx.mailstack.test").startswith(f"{smtp} ")
    assert resolve(lab, "web1", "mx.peer.test").startswith(f"{state.internet_address} ")
    listed = ".".join(reversed(str(state.listed_address).split(".")))
    assert resolve(lab, "mx2", f"{listed}.dnsbl.test").startswith("127.0.0.2 ")
    unlisted = ".".join(reversed(str(state.internet_address).split(".")))
    assert resolve(lab, "mx2", f"{unlisted}.dnsbl.test") == ""
    # Reverse DNS (addresses /etc/hosts does not list).
    ptr = lab.ssh(lab.host("mx1"), f"getent hosts {state.listed_address}").stdout
    assert ptr.split() == [str(state.listed_address), "spam.peer.test"]
    # The lab has no internet: names outside its zones do not resolve, not even the Debian
    # mirror this machine uses (hosts reach it only through the package proxy).
    mirror_host = urlsplit(debian_mirror()).hostname
    assert resolve(lab, "mx1", mirror_host) == ""


def test_peer_mta_accepts_mail_for_its_domain(lab):
    internet = lab.host("internet")
    marker = f"lab-peer-{time.time_ns()}"
    send = (
        f"printf 'Subject: {marker}\\n\\nhello\\n' | "
        "/usr/sbin/sendmail -f someone@peer.test anyone@peer.test"
    )
    assert lab.ssh(internet, send).returncode == 0
    found = f"for i in $(seq 50); do grep -rl {marker} /var/mail/peer/inbox/new && exit 0; sleep 0.2; done; exit 1"
    assert lab.ssh(internet, found).returncode == 0


def test_pebble_answers_with_a_certificate_the_lab_ca_vouches_for(lab):
    directory = lab.stack_settings.tls.acme.directory_url
    result = lab.ssh(
        lab.host("web1"),
        "curl -sS --cacert /usr/local/share/ca-certificates/mailstack-lab-ca.crt "
        + shlex.quote(directory),
    )
    assert result.returncode == 0, result.stderr
    assert '"newAccount"' in result.stdout


def test_load_balancer_takes_a_dead_mx_out_and_back_in(lab, faults):
    assert balancer_status(lab)[("smtp_25", "lab-mx1")] == "UP"
    faults.kill("mx1")
    deadline = time.monotonic() + 20
    # "UP 1/2" is a server on its way down that still gets connections.
    while not balancer_status(lab)[("smtp_25", "lab-mx1")].startswith("DOWN"):
        assert time.monotonic() < deadline, "HAProxy still sends SMTP to a dead mx"
        time.sleep(1)
    # SMTP through the load balancer still reaches the surviving mx.
    greeting = lab.ssh(
        lab.host("internet"),
        "python3 -c \"import smtplib; print(smtplib.SMTP('mx.mailstack.test', 25, timeout=20)"
        '.ehlo()[1].decode().splitlines()[0])"',
    )
    assert greeting.stdout.strip() == "lab-mx2.mailstack.test", greeting.stderr
    # On a deployed lab the mx cluster fences the dead node first; then it may come back.
    wait_until_fenced(lab, "mx1")
    faults.start("mx1")
    deadline = time.monotonic() + 60
    while balancer_status(lab)[("smtp_25", "lab-mx1")] != "UP":
        assert time.monotonic() < deadline, "HAProxy does not take the rebooted mx back"
        time.sleep(1)
