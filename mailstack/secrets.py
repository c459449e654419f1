"""Secrets the deploy generates (passwords, DKIM keys), kept on the deploying machine only.

They live in one JSON file per environment, readable by root only and never in git: in the lab
beside the lab's state (`.lab/<name>/secrets.json`), elsewhere at `$MAILSTACK_SECRETS_FILE` or
`.secrets/<stack>.json`. Losing the file is recoverable (a deploy with a new file sets new
passwords everywhere), but back it up with the operator's other credentials.
"""

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def secret_store(stack: str, lab_file: str | Path | None = None) -> "SecretStore":
    """The environment's store: beside a lab's state, else `$MAILSTACK_SECRETS_FILE` or
    `.secrets/<stack>.json` in the repository (git-ignored)."""
    if lab_file:
        return SecretStore(Path(lab_file).parent / "secrets.json")
    default = REPOSITORY / ".secrets" / f"{stack}.json"
    return SecretStore(os.environ.get("MAILSTACK_SECRETS_FILE", default))


class SecretStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text())

    def get(self, name: str, generate: Callable[[], str] | None = None) -> str:
        """The secret called `name`, generated on first use (a random token by default)."""
        values = self._read()
        if name not in values:
            values[name] = generate() if generate else secrets.token_urlsafe(32)
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = self.path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(values, handle, indent=2, sort_keys=True)
            temporary.replace(self.path)
        return values[name]
