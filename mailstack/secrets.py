"""Secrets the deploy generates (database passwords), kept on the deploying machine only.

They live in one JSON file per environment, readable by root only and never in git: in the lab
beside the lab's state (`.lab/<name>/secrets.json`), elsewhere at `$MAILSTACK_SECRETS_FILE` or
`.secrets/<stack>.json`. Losing the file is recoverable (a deploy with a new file sets new
passwords everywhere), but back it up with the operator's other credentials.
"""

import json
import os
import secrets
from pathlib import Path


class SecretStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text())

    def get(self, name: str) -> str:
        """The secret called `name`, generated on first use."""
        values = self._read()
        if name not in values:
            values[name] = secrets.token_urlsafe(32)
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = self.path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(values, handle, indent=2, sort_keys=True)
            temporary.replace(self.path)
        return values[name]
