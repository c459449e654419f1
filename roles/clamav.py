"""ClamAV on the mx hosts: clamd, asked by rspamd over its local socket for every message
(mailstack.services.clamav)."""

from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import clamav

deployment, me = target()
antivirus = deployment.settings.mail.antivirus

# Masked before the package is installed, so Debian's one-shot freshclam never runs.
masks = [
    files.link(name=f"Mask {unit}", path=f"/etc/systemd/system/{unit}", target="/dev/null")
    for unit in clamav.ONE_SHOT_UPDATES
]
systemd.daemon_reload(name="Load the masks", _if=any_changed(*masks))

packages("ClamAV", ["clamav-daemon", "clamav-freshclam"])
# With signature updates, nothing of the test set-up may be left over from a lab's settings.
removed = [
    files.file(name=f"No test setup: {path}", path=path, present=False)
    for path in (clamav.test_setup_paths() if antivirus.signature_updates else [])
]
configure(clamav.UNIT, clamav.service_files(deployment, me), check=clamav.CHECK, watch=removed)
# The socket is made anew with its access (and clamd restarted with it, which requires it).
configure(clamav.SOCKET_UNIT, clamav.socket_files(deployment, me), check=None)
systemd.service(
    name="Keep signatures current (freshclam)",
    service="clamav-freshclam",
    running=antivirus.signature_updates,
    enabled=antivirus.signature_updates,
)
