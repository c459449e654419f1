"""A configuration file a service reads, rendered by a pure function of the deployment.

Templates live under `templates/<service>/` at the path they are installed to, with `.j2` when
they are Jinja2 templates: `templates/postfix/etc/postfix/main.cf.j2` becomes
`/etc/postfix/main.cf`. Each service module in `mailstack.services` lists its files with their
contexts; roles install them with `mailstack.deploy.kit`, and tests render every one of them for
every stack without a host (tests/unit/test_templates.py).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

Effect = Literal["restart", "reload", "none"]
"""What a change of the file takes for the service to apply it."""

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class ConfigFile:
    """One file on a host: where it goes, what it holds, who may read it, what a change takes."""

    path: str
    """Absolute path on the host."""
    source: str | None = None
    """Template (or plain file) below templates/, e.g. 'postfix/etc/postfix/main.cf.j2'."""
    context: Mapping[str, Any] = field(default_factory=dict)
    content: str | None = None
    """Literal content, for generated files (keys, JSON) that have no template."""
    mode: str = "644"
    user: str = "root"
    group: str = "root"
    effect: Effect = "restart"

    @classmethod
    def template(
        cls, service: str, path: str, effect: Effect = "restart", **options
    ) -> "ConfigFile":
        """The file at `path` from `templates/<service><path>.j2` (or the plain file without
        `.j2`), rendered with the keyword arguments that are not file options."""
        file_options = {k: options.pop(k) for k in ("mode", "user", "group") if k in options}
        source = f"{service}{path}"
        if (TEMPLATES / f"{source}.j2").exists():
            source += ".j2"
        elif not (TEMPLATES / source).exists():
            raise FileNotFoundError(f"no template for {path} in templates/{service}/")
        return cls(path=path, source=source, context=options, effect=effect, **file_options)

    @classmethod
    def literal(
        cls, path: str, content: str, effect: Effect = "restart", **options
    ) -> "ConfigFile":
        return cls(path=path, content=content, effect=effect, **options)

    @property
    def name(self) -> str:
        return Path(self.path).name

    def render(self) -> str:
        """The file's content. Raises jinja2.UndefinedError for a name the context lacks."""
        if self.content is not None:
            return self.content
        if not self.source.endswith(".j2"):
            return (TEMPLATES / self.source).read_text()
        return _environment.get_template(self.source).render(**self.context)
