"""Names shared by the database role and its clients (Postfix, Dovecot, the panel, policyd)."""

DATABASE = "mailstack"
PANEL_USER = "mailstack_panel"
"""Owns the schema; the panel's migrations run as this role."""
LOOKUP_USER = "mailstack_lookup"
"""Reads only the views in schema `mail` (Postfix, Dovecot, the policy service)."""
PORT = 5432


def libpq_hosts(hosts: list[str]) -> str:
    """A libpq multi-host list (`host=a,b`), in which clients try the hosts in turn."""
    return ",".join(hosts)
