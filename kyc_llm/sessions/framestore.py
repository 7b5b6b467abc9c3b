"""Where frame JPEGs live until the retention policy deletes them: local disk or S3.

Keys are ``<session_id>/<seq>.jpg``; both stores take the same keys, so the database row
(``frames.stored_key``) does not depend on the backend. The S3 client is created on first use,
never at import or construction (so a test can start ``moto.mock_aws`` first).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, KycError

_KEY = re.compile(r"^[0-9a-f]{32}/\d{1,6}\.jpg$")


class FrameStoreError(KycError):
    """A frame could not be written, read or deleted in the frame store."""

    code = "frame_store_error"


class FrameStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete_session(self, session_id: str) -> int: ...


def frame_key(session_id: str, seq: int) -> str:
    """The store key of one frame. Raises ``FrameStoreError`` for an id that is not ours."""
    key = f"{session_id}/{seq:06d}.jpg"
    if not _KEY.match(key):
        raise FrameStoreError(f"bad frame key {key!r}")
    return key


class LocalFrameStore:
    """Files under one folder: ``<root>/<session_id>/<seq>.jpg``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise FrameStoreError(f"bad frame key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        # Written in place, without a temporary file and rename: the database row that points
        # at the frame is inserted after this returns, so a torn write is never referenced,
        # and the session folder is created once, on its first frame.
        path = self._path(key)
        try:
            try:
                with open(path, "wb") as f:
                    f.write(data)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
        except OSError as exc:
            raise FrameStoreError(f"cannot write frame: {exc.strerror}") from None

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError:
            raise FrameStoreError("frame is not in the store (deleted or never written)") from None

    def delete_session(self, session_id: str) -> int:
        """Delete every frame of a session. Returns how many files were removed."""
        folder = self.root / session_id
        if not re.fullmatch(r"[0-9a-f]{32}", session_id) or not folder.is_dir():
            return 0
        n = 0
        for path in folder.iterdir():
            path.unlink(missing_ok=True)
            n += 1
        folder.rmdir()
        return n


class S3FrameStore:
    """Objects in one bucket under a prefix, through boto3 (credentials from the usual chain)."""

    def __init__(self, bucket: str, prefix: str = "frames/", region: str | None = None,
                 endpoint_url: str | None = None) -> None:
        if not bucket:
            raise ConfigError("S3 frame store needs a bucket")
        self.bucket = bucket
        self.prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        self._region = region
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3  # lazily: the local store does not need boto3 loaded

                self._client = boto3.client("s3", region_name=self._region, endpoint_url=self._endpoint_url)
            return self._client

    def put(self, key: str, data: bytes) -> None:
        if not _KEY.match(key):
            raise FrameStoreError(f"bad frame key {key!r}")
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data,
                                   ContentType="image/jpeg", ServerSideEncryption="AES256")
        except Exception as exc:  # botocore raises many types; all mean "not stored"
            raise FrameStoreError(f"cannot write frame to S3: {type(exc).__name__}") from None

    def get(self, key: str) -> bytes:
        if not _KEY.match(key):
            raise FrameStoreError(f"bad frame key {key!r}")
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except Exception as exc:
            raise FrameStoreError(f"cannot read frame from S3: {type(exc).__name__}") from None

    def delete_session(self, session_id: str) -> int:
        """Delete every object of a session (paginated, 1000 keys per request)."""
        if not re.fullmatch(r"[0-9a-f]{32}", session_id):
            return 0
        n = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}{session_id}/")
            for page in pages:
                keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    n += len(keys)
        except Exception as exc:
            raise FrameStoreError(f"cannot delete frames in S3: {type(exc).__name__}") from None
        return n


def open_frame_store(kind: str, *, frame_dir: str, bucket: str | None = None, prefix: str = "frames/",
                     region: str | None = None, endpoint_url: str | None = None) -> FrameStore:
    """The configured frame store. Raises ``ConfigError`` for an unknown kind or no bucket."""
    if kind == "local":
        return LocalFrameStore(frame_dir)
    if kind == "s3":
        return S3FrameStore(bucket or "", prefix, region, endpoint_url)
    raise ConfigError(f"unknown frame store {kind!r}")
