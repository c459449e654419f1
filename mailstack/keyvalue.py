"""Names shared by the Valkey role and its clients (policy service, rspamd)."""

from urllib.parse import quote

PORT = 6379
PASSWORD_SECRET = "valkey_password"
MAXMEMORY_MIB = 512


def server(db_hosts: list[str]) -> str:
    """The Valkey server clients use: the first db host's, until Sentinel arrives."""
    return db_hosts[0]


def valkey_url(db_hosts: list[str], password: str, database: int = 0) -> str:
    return f"redis://:{quote(password, safe='')}@{server(db_hosts)}:{PORT}/{database}"
