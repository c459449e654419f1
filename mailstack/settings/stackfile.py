"""Reading settings from a Pulumi stack file, with every error reported at once."""

from pathlib import Path

import yaml
from pydantic import ValidationError

CONFIG_KEY = "mailstack:settings"


class SettingsError(Exception):
    """Invalid settings; `problems` holds (field path, message) for every error found."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} invalid setting(s)"]
        lines += [f"  {path}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


def _field_path(location: tuple) -> str:
    path = CONFIG_KEY
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def settings_from_mapping(data: object, source: str = "settings"):
    """Validate a plain mapping (as found under `mailstack:settings`) into `Settings`."""
    from mailstack.settings import Settings

    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            message = item["msg"].removeprefix("Value error, ")
            problems.append((_field_path(item["loc"]), message))
        raise SettingsError(source, problems) from None


def load_stack_file(path: str | Path):
    """Read `config: mailstack:settings:` from a stack file such as stacks/Pulumi.production.yaml."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SettingsError(str(path), [("file", error.strerror or str(error))]) from None
    except yaml.YAMLError as error:
        raise SettingsError(str(path), [("file", f"not valid YAML: {error}")]) from None
    config = (document or {}).get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict) or CONFIG_KEY not in config:
        raise SettingsError(
            str(path), [(CONFIG_KEY, "missing: the file has no config.mailstack:settings")]
        )
    return settings_from_mapping(config[CONFIG_KEY], str(path))
