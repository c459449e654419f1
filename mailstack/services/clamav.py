"""ClamAV on the mx hosts: clamd, asked by rspamd over its local socket for every message.

Production keeps the signatures current with freshclam. Without signature updates (the lab has
no internet) clamd runs on the platform's test signature alone (the EICAR test file), which
needs the packaged units' wait for downloaded databases lifted.
"""

from mailstack.deploy.configfile import ConfigFile

UNIT = "clamav-daemon"
# clamconf reads clamd.conf as clamd does and names each line it cannot parse (exiting 0).
CHECK = "! clamconf -n 2>&1 | grep '^ERROR'"
CLAMD_SOCKET = "/run/clamav/clamd.ctl"
SOCKET_UNIT = "clamav-daemon.socket"
"""systemd makes clamd's socket (the service requires it, so restarting it restarts clamd)."""
SOCKET_GROUP = "_rspamd"
"""rspamd's group (from Debian's package): its antivirus module is the socket's one client."""
SOCKET_ACCESS = "/etc/systemd/system/clamav-daemon.socket.d/access.conf"
TEST_SIGNATURES = "/var/lib/clamav/mailstack-test.ndb"
UNITS = ("clamav-daemon.service", "clamav-daemon.socket")
TEST_DROP_IN = "/etc/systemd/system/{unit}.d/test-signatures.conf"
ONE_SHOT_UPDATES = ("clamav-freshclam-once.service", "clamav-freshclam-once.timer")
"""Debian's package also runs freshclam once at boot and daily: the freshclam daemon does that
work, and without updates it only fails, leaving the host 'degraded'."""


def test_setup_paths() -> list[str]:
    """The files that let clamd run on the test signature alone (present only without updates)."""
    return [TEST_SIGNATURES, *(TEST_DROP_IN.format(unit=unit) for unit in UNITS)]


def service_files(deployment, host) -> list[ConfigFile]:
    """What clamd reads."""
    antivirus = deployment.settings.mail.antivirus
    files = [
        ConfigFile.template(
            "clamav",
            "/etc/clamav/clamd.conf",
            max_scan_mib=antivirus.max_scan_mib,
            clamd_socket=CLAMD_SOCKET,
            socket_group=SOCKET_GROUP,
        )
    ]
    if not antivirus.signature_updates:
        files.append(ConfigFile.template("clamav", TEST_SIGNATURES, user="clamav", group="clamav"))
        files += [ConfigFile.template("clamav", TEST_DROP_IN.format(unit=u)) for u in UNITS]
    return files


def socket_files(deployment, host) -> list[ConfigFile]:
    """The socket unit's drop-in: who may connect to clamd."""
    return [ConfigFile.template("clamav", SOCKET_ACCESS, socket_group=SOCKET_GROUP)]


def config_files(deployment, host) -> list[ConfigFile]:
    return service_files(deployment, host) + socket_files(deployment, host)
