"""ClamAV on the mx hosts: clamd, asked by rspamd over its local socket for every message.

Production keeps the signatures current with freshclam. Without signature updates (the lab has
no internet) clamd runs on the platform's test signature alone (the EICAR test file), which
needs the packaged units' wait for downloaded databases lifted.
"""

from pyinfra import host
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from mailstack import spamfilter
from mailstack.deploying import settings

antivirus = settings(host).mail.antivirus
UNITS = ("clamav-daemon.service", "clamav-daemon.socket")

# The package also runs freshclam once at boot and daily (clamav-freshclam-once): the freshclam
# daemon does that work, and without updates it only fails, leaving the host 'degraded'. Masked
# before the package is installed, so it never runs.
masks = [
    files.link(name=f"Mask {unit}", path=f"/etc/systemd/system/{unit}", target="/dev/null")
    for unit in ("clamav-freshclam-once.service", "clamav-freshclam-once.timer")
]
systemd.daemon_reload(name="Load the masks", _if=any_changed(*masks))

apt.packages(
    name="Install ClamAV",
    packages=["clamav-daemon", "clamav-freshclam"],
    update=True,
    cache_time=3600,
)

clamd_conf = files.template(
    name="Configure clamd",
    src="templates/clamav/etc/clamav/clamd.conf.j2",
    dest="/etc/clamav/clamd.conf",
    mode="644",
    max_scan_mib=antivirus.max_scan_mib,
)
DROP_IN = "/etc/systemd/system/{unit}.d/test-signatures.conf"
if antivirus.signature_updates:
    test_signatures = [
        files.file(name=f"No test setup: {path}", path=path, present=False)
        for path in (spamfilter.TEST_SIGNATURES, *(DROP_IN.format(unit=unit) for unit in UNITS))
    ]
else:
    test_signatures = [
        files.put(
            name="ClamAV test signature (EICAR)",
            src="templates/clamav" + spamfilter.TEST_SIGNATURES,
            dest=spamfilter.TEST_SIGNATURES,
            user="clamav",
            group="clamav",
            mode="644",
        ),
        *(
            files.put(
                name=f"Start {unit} without downloaded databases",
                src="templates/clamav" + DROP_IN.format(unit=unit),
                dest=DROP_IN.format(unit=unit),
                mode="644",
            )
            for unit in UNITS
        ),
    ]
systemd.daemon_reload(name="Load the clamd units", _if=any_changed(*test_signatures))

systemd.service(
    name="Keep signatures current (freshclam)",
    service="clamav-freshclam",
    running=antivirus.signature_updates,
    enabled=antivirus.signature_updates,
)
systemd.service(name="Run clamd", service="clamav-daemon", running=True, enabled=True)
systemd.service(
    name="Restart clamd for its new configuration",
    service="clamav-daemon",
    restarted=True,
    _if=any_changed(clamd_conf, *test_signatures),
)
