"""Names shared by the database role and its clients (Postfix, Dovecot, the panel, policyd)."""

DATABASE = "mailstack"
PANEL_USER = "mailpanel"
"""Owns the schema; the panel's migrations run as this role."""
LOOKUP_USER = "mail_lookup"
"""Reads only the views in schema `mail` (Postfix, Dovecot, the policy service)."""
PORT = 5432


def libpq_hosts(hosts: list[str]) -> str:
    """A libpq multi-host list (`host=a,b`), in which clients try the hosts in turn."""
    return ",".join(hosts)


def scram_matches(verifier: str, password: str) -> bool:
    """Whether `password` is the one behind a PostgreSQL SCRAM-SHA-256 verifier.

    The verifier (pg_authid.rolpassword) is `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:
    <ServerKey>`; recomputing StoredKey (RFC 5802) tells without logging in, so a deploy sets a
    password only when it differs.
    """
    import base64
    import hashlib
    import hmac

    try:
        scheme, iterations_salt, keys = verifier.strip().split("$")
        iterations, salt = iterations_salt.split(":")
        stored_key = keys.split(":")[0]
    except ValueError:
        return False
    if scheme != "SCRAM-SHA-256":
        return False
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(
        base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key
    )
