"""Where originals and results live: a local directory, or an S3-compatible bucket.

Web and workers on different hosts must share one storage, so every host gets the same
STORAGE_URL. Keys are made by Seasons alone (hashes and job ids) and checked anyway, so no
stored name can reach outside the storage.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from flask import Flask, current_app

_KEY = re.compile(r"^[a-z]+(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+$")


def check_key(key: str) -> str:
    """Return `key` if it is a plain 'area/name…' path; refuse anything that could traverse."""
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"invalid storage key {key!r}")
    return key


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes:
        """The stored bytes; `KeyError` if there are none."""
        ...


class LocalStorage:
    """Files under one directory; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None


class S3Storage:
    """Objects in an S3-compatible bucket (AWS, MinIO, Ceph…); credentials the usual AWS way."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str = "us-east-1") -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None


def storage_from_url(url: str, endpoint_url: str | None = None, region: str = "us-east-1") -> Storage:
    """'s3://bucket/prefix' → S3Storage; anything else is a local directory."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        return S3Storage(bucket, prefix, endpoint_url, region)
    return LocalStorage(url.removeprefix("file://"))


def init_storage(app: Flask) -> None:
    app.extensions["storage"] = storage_from_url(
        app.config["STORAGE_URL"], app.config["S3_ENDPOINT_URL"], app.config["S3_REGION"]
    )


def storage() -> Storage:
    """The current app's storage."""
    return current_app.extensions["storage"]
