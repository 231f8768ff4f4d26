"""The object store (any S3 API): immutable version contents, written once at a fresh key.

Only worker threads call this (the threading contract: nothing on the event loop waits for S3).
Every call has connect and read timeouts and few retries; an object store that does not answer
raises `Unavailable` (NFS4ERR_DELAY), logged once per outage.

Contents are stored in chunks (one object per CHUNK-sized piece of a version, see schema.py).
Keys are `PREFIX/c/<random>`: never reused, so an object never changes under a reader, and an
object is deleted only through the database's gc queue, never because a listing missed it.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

from .. import interface as I
from .db import Health


def parse_data_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix without slashes at the ends)."""
    u = urlsplit(url)
    if u.scheme != "s3" or not u.netloc:
        raise ValueError(f"{url}: the data URL must be s3://BUCKET[/PREFIX]")
    return u.netloc, u.path.strip("/")


class ObjectStore:
    """Bucket `bucket` under `prefix`; `endpoint` for S3-compatible stores (MinIO, moto, Ceph
    RGW); credentials from the usual AWS environment variables."""

    def __init__(self, data_url: str, endpoint: str | None = None, timeout: float = 10.0):
        self.bucket, self.prefix = parse_data_url(data_url)
        self.health = Health("object store")
        cfg = botocore.config.Config(connect_timeout=min(timeout, 3.0), read_timeout=timeout,
                                     retries={"max_attempts": 2, "mode": "standard"},
                                     max_pool_connections=32)
        self.s3 = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, config=cfg,
            region_name=os.environ.get("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION",
                                                                            "us-east-1")))

    def new_key(self) -> str:
        return f"{self.prefix}/c/{secrets.token_hex(16)}" if self.prefix \
            else f"c/{secrets.token_hex(16)}"

    def _call(self, fn, **kw):
        try:
            r = fn(Bucket=self.bucket, **kw)
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "RequestTimeout"):
                self.health.failed(code or status)
                raise I.Unavailable(f"object store: {code or status}") from None
            if code in ("NoSuchKey", "404"):
                raise I.NotFound(f"object store: {code}") from None
            raise I.IOFailure(f"object store: {code or status}: {e}") from None
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            self.health.failed(e)
            raise I.Unavailable(f"object store: {e}") from None
        self.health.ok()
        return r

    # ---- writing
    def put(self, key: str, data) -> None:
        self._call(self.s3.put_object, Key=key, Body=bytes(data))

    def delete(self, key: str) -> None:
        self._call(self.s3.delete_object, Key=key)

    # ---- reading
    def get(self, key: str, offset: int, count: int) -> bytes:
        """Bytes [offset, offset+count) of object `key` (fewer at its end)."""
        if count <= 0:
            return b""
        r = self._call(self.s3.get_object, Key=key, Range=f"bytes={offset}-{offset + count - 1}")
        try:
            return r["Body"].read()
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            self.health.failed(e)
            raise I.Unavailable(f"object store: {e}") from None

    # ---- checks (tests, `nfsd inspect`)
    def keys(self) -> set[str]:
        out, token = set(), None
        while True:
            kw = {"Prefix": self.prefix + "/" if self.prefix else ""}
            if token:
                kw["ContinuationToken"] = token
            r = self._call(self.s3.list_objects_v2, **kw)
            out |= {o["Key"] for o in r.get("Contents", ())}
            if not r.get("IsTruncated"):
                return out
            token = r["NextContinuationToken"]

    def uploads(self) -> list[tuple[str, str]]:
        r = self._call(self.s3.list_multipart_uploads,
                       Prefix=self.prefix + "/" if self.prefix else "")
        return [(u["Key"], u["UploadId"]) for u in r.get("Uploads", ())]
