"""A certificate for the names each host serves, in mailstack.tls's paths.

A host starts with a self-signed certificate so its services can start before the first ACME
order succeeds; the ACME step replaces it and renews it, reloading the services.
"""

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server

from mailstack import tls
from mailstack.deploying import settings

names = tls.certificate_names(settings(host), host.data.roles)

apt.packages(
    name="Install OpenSSL", packages=["openssl", "ca-certificates"], update=True, cache_time=3600
)
files.directory(name="Create the certificate directory", path=tls.TLS_DIR, mode="755")

if names and not host.get_fact(File, path=tls.CERTIFICATE):
    subject_names = ",".join(f"DNS:{name}" for name in names)
    server.shell(
        name="Create a bootstrap certificate until ACME issues one",
        commands=[
            f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
            f"-subj /CN={names[0]} -addext subjectAltName={subject_names} "
            f"-keyout {tls.PRIVATE_KEY} -out {tls.CERTIFICATE}",
            f"chmod 600 {tls.PRIVATE_KEY}",
        ],
    )
