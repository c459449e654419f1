"""corosync-qnetd, the quorum device of every failover cluster, on the first db node, and the
certificates its clients (each cluster's corosync-qdevice) and it prove themselves with.

A two-node cluster cannot tell a dead peer from a cut link on its own; qnetd is the third vote
(algorithm ffsplit for an even number of nodes: exactly one half keeps quorum; lms for an odd
number), so only a partition that still reaches it may fence the other side and take over.

TLS is required both ways, as corosync's own tools set it up: qnetd shows a certificate with
CN "Qnetd Server", each cluster's nodes one whose CN is their cluster name (qnetd checks it
against the name the client claims), both from one CA. The CA and the certificates are made on
the deploying machine into the environment's secrets, once; services build their NSS databases
from the PEM files when they start (`NSSDB_SCRIPT`).
"""

import datetime
from dataclasses import dataclass

from mailstack.deploy.configfile import ConfigFile

UNIT = "corosync-qnetd"
PORT = 5403
"""corosync-qnetd's default TCP port; every cluster node connects to it."""
CA_NICKNAME = "QNet CA"
SERVER_NICKNAME = "QNetd Cert"
SERVER_CN = "Qnetd Server"
"""What corosync-qdevice expects the server certificate to name (QDEVICE_NET_DEFAULT_NSS_QNETD_CN)."""
CLIENT_NICKNAME = "Cluster Cert"
"""The nickname corosync-qdevice looks its own certificate up by."""
PEM_DIR = "/etc/corosync/qnetd/mailstack"
NSSDB_DIR = "/etc/corosync/qnetd/nssdb"
NSSDB_SCRIPT = "/usr/local/sbin/mailstack-nssdb"
"""Builds an NSS database from PEM files (CA, certificate, key), replacing the old one."""
RUN_AS = "coroqnetd"
"""Debian's system user corosync-qnetd runs as."""
VALIDITY = datetime.timedelta(days=20 * 365)
"""Certificates of the quorum device's own CA last as long as corosync's certutil makes them;
rotating means removing them from the secrets and deploying."""
# The check reads the PEM files as the services will: every certificate chains to the CA.
CHECK = (
    f"openssl verify -CAfile {PEM_DIR}/ca.pem {PEM_DIR}/server.pem >/dev/null"
    f" && sh -n /etc/default/{UNIT}"
)


@dataclass(frozen=True)
class Credentials:
    """A certificate and its key, PEM."""

    certificate: str
    key: str


def _key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _certificate(common_name: str, key_pem: str, issuer_pem: str | None, issuer_key: str) -> str:
    """A certificate for `common_name` with the key `key_pem`, signed by `issuer_key` (self-signed
    CA when `issuer_pem` is None)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = serialization.load_pem_private_key(key_pem.encode(), None)
    signer = serialization.load_pem_private_key(issuer_key.encode(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer = x509.load_pem_x509_certificate(issuer_pem.encode()).subject if issuer_pem else name
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
    )
    if issuer_pem is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        ).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def ca(secrets) -> Credentials:
    """The quorum device's CA, generated into the secrets on first use."""
    key = secrets.get("qnetd/ca_key", _key)
    certificate = secrets.get(
        "qnetd/ca_certificate", lambda: _certificate("QNet CA", key, None, key)
    )
    return Credentials(certificate, key)


def issued(secrets, name: str, common_name: str) -> Credentials:
    """A certificate of the quorum device's CA for `common_name`, kept as `qnetd/<name>_*`."""
    authority = ca(secrets)
    key = secrets.get(f"qnetd/{name}_key", _key)
    certificate = secrets.get(
        f"qnetd/{name}_certificate",
        lambda: _certificate(common_name, key, authority.certificate, authority.key),
    )
    return Credentials(certificate, key)


def server(secrets) -> Credentials:
    return issued(secrets, "server", SERVER_CN)


def client(secrets, cluster_name: str) -> Credentials:
    """A cluster's client certificate: its CN is the cluster's name, as qnetd demands."""
    return issued(secrets, f"cluster_{cluster_name}", cluster_name)


def nssdb_script() -> ConfigFile:
    return ConfigFile.template("qnetd", NSSDB_SCRIPT, effect="none", mode="755", ca=CA_NICKNAME)


def config_files(deployment, host) -> list[ConfigFile]:
    own = server(deployment.secrets)
    secret = {"user": "root", "group": RUN_AS, "mode": "640"}
    return [
        nssdb_script(),
        ConfigFile.literal(f"{PEM_DIR}/ca.pem", ca(deployment.secrets).certificate),
        ConfigFile.literal(f"{PEM_DIR}/server.pem", own.certificate),
        ConfigFile.literal(f"{PEM_DIR}/server.key", own.key, **secret),
        ConfigFile.template(
            "qnetd",
            f"/etc/default/{UNIT}",
            private_ip=str(host.private_ip),
            port=PORT,
        ),
        ConfigFile.template(
            "qnetd",
            f"/etc/systemd/system/{UNIT}.service.d/mailstack.conf",
            nssdb_script=NSSDB_SCRIPT,
            nssdb_dir=NSSDB_DIR,
            pem_dir=PEM_DIR,
            certificate="server",
            nickname=SERVER_NICKNAME,
            owner=f"root:{RUN_AS}",
        ),
    ]
