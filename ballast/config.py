"""Operator configuration: one typed settings object, read from the environment.

Flags of the ``ballast`` command line override these (they use the values here as their defaults), so
every setting can be given either way. The variable names follow the tools people already use:
``KUBECONFIG`` as kubectl reads it, ``TEMPORAL_*`` as the Temporal CLI reads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ballast.messages import DEFAULT_TASK_QUEUE


class KafkaAddressing(StrEnum):
    """How the operator reaches the Kafka listeners of a cluster it runs.

    ``cluster-dns``: the Services' cluster DNS names (``<svc>.<ns>.svc:<port>``), as an operator running
    inside the cluster does. ``devcluster``: the ``devcluster.ballast.dev/loopback`` annotation of the
    Service, which maps each service port to a 127.0.0.1 address (devcluster has no pod network).
    """

    CLUSTER_DNS = "cluster-dns"
    DEVCLUSTER = "devcluster"


class TemporalTLS(BaseModel):
    """mTLS to the Temporal frontend; ``enabled`` with no files means server-verified TLS only."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    cert_path: str | None = Field(default=None, description="client certificate (PEM)")
    key_path: str | None = Field(default=None, description="client private key (PEM)")
    ca_path: str | None = Field(default=None, description="CA bundle that signed the server certificate")
    server_name: str | None = Field(default=None, description="overrides the name checked on the server cert")

    @model_validator(mode="after")
    def _cert_needs_key(self) -> TemporalTLS:
        if (self.cert_path is None) != (self.key_path is None):
            raise ValueError("a client certificate and its key go together: give both or neither")
        return self

    @classmethod
    def resolve(cls, enabled: bool | None, **files: str | None) -> TemporalTLS:
        """The TLS settings of one source (flags or environment): ``enabled`` when said explicitly, else on
        as soon as any TLS file or the server name is given (the Temporal CLI's default too)."""
        given = {k: v for k, v in files.items() if v}
        return cls(enabled=enabled if enabled is not None else bool(given), **given)


def parse_bool(name: str, value: str | None) -> bool | None:
    """``true``/``1``/``yes`` or ``false``/``0``/``no`` (any case); ``None`` when unset or empty.

    Raises ``ValueError`` naming ``name`` for anything else."""
    text = (value or "").strip().lower()
    if not text:
        return None
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{name}: expected true or false, got {value!r}")


# TemporalTLS field -> the environment variable it falls back to (the names the Temporal CLI reads).
TLS_ENV = {"cert_path": "TEMPORAL_TLS_CERT", "key_path": "TEMPORAL_TLS_KEY", "ca_path": "TEMPORAL_TLS_CA",
           "server_name": "TEMPORAL_TLS_SERVER_NAME"}


class OperatorSettings(BaseModel):
    """Everything the operator process needs to know about its surroundings."""

    model_config = ConfigDict(frozen=True)

    kubeconfig: str | None = Field(default=None, description="kubeconfig file, or several separated by ':' "
                                                            "as in KUBECONFIG; None = in-cluster config")
    namespaces: tuple[str, ...] = Field(default=(), description="watched namespaces; empty = all")
    kafka_addressing: KafkaAddressing = KafkaAddressing.CLUSTER_DNS
    kafka_timeout_seconds: float = Field(
        default=2.0, gt=0, description="bound on each Kafka connection attempt and request, so observing an "
                                       "unreachable cluster stays fast")
    task_queue: str = DEFAULT_TASK_QUEUE
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_tls: TemporalTLS = Field(default_factory=TemporalTLS)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read the settings from ``env`` (default ``os.environ``); unset or empty variables keep defaults.

        Raises ``ValueError`` naming the variable when a value is not acceptable.
        """
        source = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = source.get(name, "").strip()
            return value or None

        tls_files = {k: get(v) for k, v in TLS_ENV.items()}
        try:
            tls = TemporalTLS.resolve(parse_bool("TEMPORAL_TLS", get("TEMPORAL_TLS")), **tls_files)
        except ValidationError as err:
            message = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ValueError(f"TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: {message}") from err
        fields: dict[str, object] = {"kubeconfig": get("KUBECONFIG"), "temporal_tls": tls}
        namespaces = get("BALLAST_NAMESPACES")
        if namespaces:
            fields["namespaces"] = tuple(n.strip() for n in namespaces.split(",") if n.strip())
        for name, var in (("kafka_addressing", "BALLAST_KAFKA_ADDRESSING"),
                          ("kafka_timeout_seconds", "BALLAST_KAFKA_TIMEOUT_SECONDS"),
                          ("task_queue", "BALLAST_TASK_QUEUE"), ("temporal_address", "TEMPORAL_ADDRESS"),
                          ("temporal_namespace", "TEMPORAL_NAMESPACE")):
            value = get(var)
            if value is not None:
                fields[name] = value
        try:
            return cls.model_validate(fields)
        except ValidationError as err:
            first = err.errors()[0]
            var = {"kafka_addressing": "BALLAST_KAFKA_ADDRESSING",
                   "kafka_timeout_seconds": "BALLAST_KAFKA_TIMEOUT_SECONDS"}.get(str(first["loc"][0]),
                                                                                str(first["loc"][0]))
            raise ValueError(f"{var}: {first['msg']}") from err
