"""The object store (file or S3) as a Dagster resource; the logic is `fhevm_dagster.objects`."""

from __future__ import annotations

from dagster import ConfigurableResource

from ..objects import ObjectBackend, open_backend


class ObjectStoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """Empty fields mean `Settings.object_store` / `Settings.s3_endpoint` (read on use).

    Credentials never go here: boto3 reads the standard AWS variables and files.
    """

    url: str = ""
    s3_endpoint_url: str = ""

    def backend(self) -> ObjectBackend:
        return open_backend(self.url or None, self.s3_endpoint_url or None)
