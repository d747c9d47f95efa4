"""The object store (file or S3) as a Dagster resource; the logic is `fhevm_dagster.objects`."""

from __future__ import annotations

from dagster import ConfigurableResource

from ..objects import ObjectBackend, open_backend
from ..settings import default


class ObjectStoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """`Settings.object_store` and `Settings.s3_endpoint` (empty: AWS). Credentials never go
    here: boto3 reads the standard AWS variables and files."""

    url: str = default("object_store")
    s3_endpoint_url: str = default("s3_endpoint")

    def backend(self) -> ObjectBackend:
        return open_backend(self.url, self.s3_endpoint_url)
