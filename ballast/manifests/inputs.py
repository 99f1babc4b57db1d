"""``RenderInput``: everything manifest rendering depends on, and nothing else.

Rendering is a pure function of this value: the same input always yields byte-identical objects (and hashes),
which is what lets the workflow re-render at any time and the apply activity skip unchanged objects.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ballast.manifests.names import DEFAULT_CLUSTER_DOMAIN
from ballast.spec import KafkaClusterSpec

# A KRaft cluster id: a UUID as 22 characters of unpadded base64url (what `kafka-storage.sh random-uuid` prints).
CLUSTER_ID_PATTERN = r"^[A-Za-z0-9_-]{22}$"


class RenderInput(BaseModel):
    """The identity of one ``KafkaCluster`` plus its spec and the facts the operator keeps in its status."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="metadata.name of the KafkaCluster.")
    namespace: str = Field(min_length=1, description="metadata.namespace; every object lives there too.")
    uid: str = Field(min_length=1, description="metadata.uid, for the ownerReferences.")
    spec: KafkaClusterSpec
    cluster_id: str = Field(pattern=CLUSTER_ID_PATTERN,
                            description="The KRaft cluster id, generated once and kept in status.clusterId.")
    cluster_domain: str = Field(default=DEFAULT_CLUSTER_DOMAIN, min_length=1,
                                description="The cluster DNS domain (kubelet --cluster-domain).")

    @property
    def image(self) -> str:
        """``spec.image``, else the official ``apache/kafka:<version>`` image."""
        return self.spec.image or f"apache/kafka:{self.spec.version}"
