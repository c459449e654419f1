"""How the mailstore and mx clusters (Pacemaker, Corosync, a quorum device) notice a dead node
and take over its volume."""

from pydantic import Field, model_validator

from mailstack.settings.base import Model


class FailoverSettings(Model):
    """The failover clusters of the mailstore pair and of the mx nodes."""

    token_timeout_ms: int = Field(
        3000,
        ge=1000,
        le=30000,
        description="Corosync's totem token timeout (ms): how long a node may go unheard before "
        "the others count it as lost and fence it. Lower fails over sooner; too low fences "
        "nodes on a short network hiccup. Corosync waits 1.2 times as long again for "
        "consensus before it forms the new membership.",
    )
    fence_timeout_seconds: int = Field(
        60,
        ge=10,
        le=600,
        description="How long one fence may take: a hard power-off through the Hetzner API "
        "until the API reports the server off. A fence that takes longer has failed and is "
        "retried; nothing is taken over until one succeeded.",
    )
    volume_timeout_seconds: int = Field(
        60,
        ge=10,
        le=600,
        description="How long taking a volume over may take: detach where it is, attach here "
        "(through the Hetzner API) and its device appearing; also how long a detach may take "
        "when the volume is handed back.",
    )
    service_timeout_seconds: int = Field(
        60,
        ge=10,
        le=600,
        description="How long mounting or unmounting a volume's filesystem (a journal replay "
        "after a crash included) and starting or stopping Dovecot or a Postfix instance may "
        "take before the cluster counts it as failed.",
    )
    monitor_interval_seconds: int = Field(
        10,
        ge=2,
        le=300,
        description="How often the cluster checks each resource where it runs (volume "
        "attached, filesystem mounted, service running). A failed check restarts the resource "
        "in place, or moves it after `failures_before_move` failures.",
    )
    failures_before_move: int = Field(
        2,
        ge=1,
        le=100,
        description="Failures of a resource on one node after which it moves to another node "
        "(Pacemaker's migration-threshold); until then it is restarted in place.",
    )
    failure_timeout_seconds: int = Field(
        600,
        ge=60,
        le=86400,
        description="After this long without a new failure, a node's failures of a resource "
        "are forgotten (Pacemaker's failure-timeout), so the node may run it again.",
    )
    api_request_timeout_seconds: int = Field(
        10,
        ge=2,
        le=60,
        description="How long one HTTP request to the Hetzner Cloud API may take (the fence "
        "and volume agents retry within their own timeouts).",
    )

    balancer_check_interval_seconds: int = Field(
        5,
        ge=3,
        le=60,
        description="How often the load balancers check each node's service (a TCP connect, "
        "an HTTP request for the panel). With the retries it bounds how long a dead node "
        "still gets connections and how soon the node that took over gets them.",
    )
    balancer_check_timeout_seconds: int = Field(
        3,
        ge=1,
        le=30,
        description="How long one balancer check may take before it counts as failed; "
        "shorter than the interval.",
    )
    balancer_check_retries: int = Field(
        2,
        ge=1,
        le=10,
        description="Failed checks in a row after which a balancer sends a node no more "
        "connections.",
    )

    @model_validator(mode="after")
    def _requests_fit_operations(self) -> "FailoverSettings":
        # A fence or move makes several requests (look up, act, poll); each must fit at least
        # twice into the operation's own timeout.
        for name in ("fence_timeout_seconds", "volume_timeout_seconds"):
            if getattr(self, name) < 2 * self.api_request_timeout_seconds:
                raise ValueError(
                    f"{name} ({getattr(self, name)} s) must be at least twice "
                    f"api_request_timeout_seconds ({self.api_request_timeout_seconds} s)"
                )
        if self.balancer_check_timeout_seconds >= self.balancer_check_interval_seconds:
            raise ValueError(
                f"balancer_check_timeout_seconds ({self.balancer_check_timeout_seconds} s) must "
                f"be shorter than balancer_check_interval_seconds "
                f"({self.balancer_check_interval_seconds} s)"
            )
        return self
