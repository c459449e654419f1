"""How many hosts of each role, of which size."""

from typing import Literal

from pydantic import Field, model_validator

from mailstack.settings.base import Model

Role = Literal["mx", "mailstore", "db", "web"]
ROLES: tuple[Role, ...] = ("mx", "mailstore", "db", "web")


class RoleSettings(Model):
    """Hosts of one role."""

    count: int = Field(ge=0, le=20, description="Number of hosts with this role.")
    server_type: str = Field(
        "cx32",
        pattern=r"^c[a-z]*\d+$",
        description="Hetzner server type.",
        examples=["cx32", "ccx23"],
    )
    volume_size_gb: int = Field(
        0,
        ge=0,
        le=10240,
        description="Size of the role's data volume (mail storage, queue, database); 0 for none.",
    )


class TopologySettings(Model):
    """The shape of the platform: an HA cluster, or everything on one host."""

    profile: Literal["ha", "lab", "single"] = Field(
        "ha",
        description="'ha': separate, redundant hosts per role (>=2 mx, 2 mailstore, an odd "
        "number >=3 of db, >=2 web); 'lab': the HA shape at the smallest sizes (>=2 mx, "
        "2 mailstore, an odd number >=3 of db, >=1 web); 'single': every role on one host.",
    )
    mx: RoleSettings = Field(
        RoleSettings(count=2, server_type="cx32", volume_size_gb=20),
        description="Inbound and submission MTAs (Postfix, rspamd, ClamAV, policy service); "
        "the volume holds the mail queue.",
    )
    mailstore: RoleSettings = Field(
        RoleSettings(count=2, server_type="cx42", volume_size_gb=500),
        description="Mail storage (Dovecot), an active/passive pair; the volume holds the mail.",
    )
    db: RoleSettings = Field(
        RoleSettings(count=3, server_type="cx32", volume_size_gb=40),
        description="PostgreSQL and Valkey cluster nodes; the volume holds the database.",
    )
    web: RoleSettings = Field(
        RoleSettings(count=2, server_type="cx22", volume_size_gb=0),
        description="Control panel and webmail.",
    )

    def role(self, name: Role) -> RoleSettings:
        return getattr(self, name)

    @model_validator(mode="after")
    def _counts_fit_profile(self) -> "TopologySettings":
        counts = {role: self.role(role).count for role in ROLES}
        if self.profile == "single":
            wrong = [role for role, count in counts.items() if count != 1]
            if wrong:
                raise ValueError(
                    f"profile 'single' puts every role on one host: set count to 1 for {wrong}"
                )
            return self
        # Patroni's etcd and Sentinel need a majority of three to fail over.
        minimum_db, minimum_web = 3, (2 if self.profile == "ha" else 1)
        problems = []
        if counts["mx"] < 2:
            problems.append("mx.count must be at least 2")
        if counts["mailstore"] != 2:
            problems.append("mailstore.count must be 2 (an active/passive pair)")
        if counts["db"] < minimum_db or counts["db"] % 2 == 0:
            problems.append(f"db.count must be odd and at least {minimum_db} (quorum)")
        if counts["web"] < minimum_web:
            problems.append(f"web.count must be at least {minimum_web}")
        if problems:
            raise ValueError(f"profile {self.profile!r} needs " + "; ".join(problems))
        return self
