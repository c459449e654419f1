"""Names shared by the Valkey role and its clients (policy service, rspamd)."""

from urllib.parse import quote

PORT = 6379
PASSWORD_SECRET = "valkey_password"
MAXMEMORY_MIB = 512


def valkey_url(db_hosts: list[str], password: str, database: int = 0) -> str:
    """The URL clients use: the first db host, which runs Valkey until Sentinel arrives."""
    return f"redis://:{quote(password, safe='')}@{db_hosts[0]}:{PORT}/{database}"
