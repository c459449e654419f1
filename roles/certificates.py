"""The certificate each host's services read, at mailstack.services.certificates.s paths, before they start.

With ACME (roles/acme.py obtains and renews it later in the deploy) a host starts with a
self-signed certificate for its names, so Postfix and Dovecot can start before the first order
succeeds. With certificates.mode 'provided' the operator's files are uploaded and installed instead.
Either way one script installs a certificate and reloads the services that use it.
"""

import hashlib
from pathlib import Path

from pyinfra import host
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations import files, server

from mailstack.deploy.kit import install, packages, target
from mailstack.facts import UntrustedLocalCAs
from mailstack.services import certificates

deployment, me = target()
config = deployment.settings
names = certificates.certificate_names(config, me.roles)

packages("OpenSSL", ["openssl", "ca-certificates"])
# The lab places its CA here for the ACME server's API; production trusts the public web PKI.
if host.get_fact(UntrustedLocalCAs):
    server.shell(
        name="Trust the local certificate authorities", commands=["update-ca-certificates"]
    )
files.directory(name="Create the certificate directory", path=certificates.TLS_DIR, mode="755")
for script in certificates.config_files(deployment, me):
    install(script, "certificates")

if config.tls.mode == "provided":
    provided = config.tls.provided
    # (upload as, installed at, from, its settings field, mode)
    uploads = [
        (
            "fullchain.pem",
            certificates.CERTIFICATE,
            provided.certificate_path,
            "certificate_path",
            "644",
        ),
        ("privkey.pem", certificates.PRIVATE_KEY, provided.key_path, "key_path", "600"),
    ]
    for _filename, _installed, source, field, _mode in uploads:
        if not Path(source).is_file():
            raise SystemExit(f"certificates.provided.{field}: no such file here: {source}")
    files.directory(
        name="Create the directory of the provided certificate",
        path=certificates.PROVIDED_DIR,
        mode="700",
    )
    for filename, _installed, source, _field, mode in uploads:
        files.put(
            name=f"Upload the provided {filename}",
            src=source,
            dest=f"{certificates.PROVIDED_DIR}/{filename}",
            mode=mode,
        )
    if any(
        host.get_fact(Sha256File, path=installed)
        != hashlib.sha256(Path(source).read_bytes()).hexdigest()
        for _filename, installed, source, _field, _mode in uploads
    ):
        server.shell(
            name="Install the provided certificate and reload its services",
            commands=[f"{certificates.INSTALL_SCRIPT} {certificates.PROVIDED_DIR}"],
        )
elif names and not host.get_fact(File, path=certificates.CERTIFICATE):
    subject_names = ",".join(f"DNS:{name}" for name in names)
    server.shell(
        name="Create a bootstrap certificate until ACME issues one",
        commands=[
            f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
            f"-subj /CN={names[0]} -addext subjectAltName={subject_names} "
            f"-keyout {certificates.PRIVATE_KEY} -out {certificates.CERTIFICATE}",
            f"chmod 600 {certificates.PRIVATE_KEY}",
        ],
    )
