"""A real S3-compatible server on 127.0.0.1 for the tests (moto's ThreadedMotoServer, through
boto3 as in production), and a fresh bucket per test.

tests/conftest.py registers them as a plugin; test modules just name them as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from fhevm_dagster.devnet import free_port
from fhevm_dagster.objects import S3Backend

BUCKET = "coprocessor"
__all__ = ["s3", "s3_endpoint"]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Backend:
    """A fresh bucket on the local server, reached with the standard AWS variables."""
    for k, v in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    bucket = f"{BUCKET}-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return S3Backend(bucket, endpoint_url=s3_endpoint)
