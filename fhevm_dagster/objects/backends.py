"""Where objects go: a directory (the demo) or an S3 bucket (what a KMS reads), one interface.

`Settings.object_store` picks the backend: `file:///path` (default under
`~/.cache/fhevm-dagster/objects`) or `s3://bucket[/prefix]`, with `Settings.s3_endpoint` for
an S3-compatible server and the standard AWS variables for credentials and region. S3 lowercases
user metadata keys, so readers look keys up case-insensitively (`meta_get`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse


class ObjectStoreError(RuntimeError):
    """A backend that cannot be configured or reached."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    body: bytes
    metadata: dict[str, str]


def meta_get(metadata: Mapping[str, str], key: str) -> str | None:
    """A user metadata value by case-insensitive key (S3 returns them lowercased)."""
    low = key.lower()
    return next((v for k, v in metadata.items() if k.lower() == low), None)


class ObjectBackend(Protocol):
    url: str

    def get(self, key: str) -> StoredObject | None: ...

    def exists(self, key: str) -> bool:
        """Whether `key` holds an object (without reading it)."""
        ...

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None: ...

    def delete(self, key: str) -> None:
        """Removes `key` and its metadata; absent is not an error."""
        ...


class FileBackend:
    """Objects as files under a directory; metadata in a `<file>.metadata.json` beside each."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser()
        self.url = "file://" + str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ObjectStoreError(f"object key {key!r} leaves {self.root}")
        return path

    def get(self, key: str) -> StoredObject | None:
        path = self._path(key)
        if not path.is_file():
            return None
        meta_path = path.with_name(path.name + ".metadata.json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        return StoredObject(path.read_bytes(), {str(k): str(v) for k, v in meta.items()})

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Metadata first, body last, each by rename: a reader never sees a body without its
        # attestation, and a crash leaves at worst a stale sidecar that the next run rewrites.
        for target, data in (
            (path.with_name(path.name + ".metadata.json"), json.dumps(dict(metadata)).encode()),
            (path, body),
        ):
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)

    def delete(self, key: str) -> None:
        # Body first: a reader never sees a body without its attestation.
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".metadata.json").unlink(missing_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"cannot delete {self.url}/{key}: {exc}") from exc


class S3Backend:
    """A bucket through boto3 (endpoint from `Settings.s3_endpoint`, credentials: AWS's)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        import boto3  # deferred: the file backend needs no AWS SDK import time

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url or None)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> StoredObject | None:
        try:
            out = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise ObjectStoreError(f"cannot read {self.url}/{key}: {exc}") from exc
        return StoredObject(out["Body"].read(), dict(out.get("Metadata") or {}))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ObjectStoreError(f"cannot look up {self.url}/{key}: {exc}") from exc
        except Exception as exc:
            raise ObjectStoreError(f"cannot look up {self.url}/{key}: {exc}") from exc
        return True

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=body,
                Metadata=dict(metadata),
                ChecksumAlgorithm="SHA256",  # the server checks the body, as the reference asks
            )
        except Exception as exc:
            raise ObjectStoreError(f"cannot write {self.url}/{key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise ObjectStoreError(f"cannot delete {self.url}/{key}: {exc}") from exc


def open_backend(url: str, endpoint_url: str | None = None) -> ObjectBackend:
    """The backend of `url` (`Settings.object_store`); an S3 URL's service at `endpoint_url`
    (`Settings.s3_endpoint`; None: AWS's)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileBackend(Path(parsed.netloc + parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ObjectStoreError(f"{url!r}: an S3 URL names a bucket, s3://bucket[/prefix]")
        return S3Backend(parsed.netloc, parsed.path, endpoint_url or None)
    raise ObjectStoreError(f"{url!r}: the object store is file:///path or s3://bucket")
