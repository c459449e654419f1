"""unbound on the mx hosts: the resolver postscreen and rspamd ask (through /etc/resolv.conf).

A resolver of the host's own, recursing from the root servers, is what the public blocklists
require (they refuse queries arriving through shared public resolvers, answering with error
codes instead of listings) and keeps SPF, DKIM and DMARC lookups cached on the host.
"""

from mailstack.deploy.configfile import ConfigFile

UNIT = "unbound"
CHECK = "unbound-checkconf"
RESOLV_CONF = "/etc/resolv.conf"


def config_files(deployment, host) -> list[ConfigFile]:
    resolver = deployment.settings.dns.resolver
    return [
        ConfigFile.template(
            "unbound",
            "/etc/unbound/unbound.conf.d/mailstack.conf",
            forwarders=[str(address) for address in resolver.forwarders],
            dnssec=resolver.dnssec,
            special_zones=resolver.forwarded_special_zones,
        )
    ]


def resolv_conf() -> ConfigFile:
    """The host's resolver configuration, pointing at unbound (installed once it answers)."""
    return ConfigFile.template("unbound", RESOLV_CONF, effect="none")
