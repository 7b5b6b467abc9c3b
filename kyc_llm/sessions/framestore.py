"""Where frame JPEGs live until the retention policy deletes them: local disk or S3.

A frame is put under the key ``<session_id>/<seq>-<digest>.jpg`` (the first 16 hex digits of
its sha256: two uploads racing with the same sequence number write two objects, and the
database row names the one it analysed); ``put`` returns the key to read it
back with, which the database row keeps (``frames.stored_key``): the same key on S3, the key
and a byte range on local disk. The S3 client is created on first use, never at import or
construction (so a test can start ``moto.mock_aws`` first).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, KycError

# A frame's sequence number is at most MAX_SEQ: the key holds six digits, and a frame whose
# key could not be written would reach the decision without an image for the judge.
MAX_SEQ = 999_999
_SESSION = re.compile(r"[0-9a-f]{32}")
# Keys written before the digest was added (``<seq>.jpg``) are still read and deleted.
_KEY = re.compile(r"[0-9a-f]{32}/[0-9]{1,6}(-[0-9a-f]{16})?\.jpg")
_LOCAL_KEY = re.compile(r"(?P<session>[0-9a-f]{32})/[0-9]{1,6}(-[0-9a-f]{16})?\.jpg"
                        r"@(?P<offset>[0-9]{1,15})\+(?P<length>[0-9]{1,9})")


class FrameStoreError(KycError):
    """A frame could not be written, read or deleted in the frame store."""

    code = "frame_store_error"


# Below this much free space a store reports itself unable to take frames (healthz), before
# the disk is full: a session is a few MB, and SQLite needs room for its WAL.
MIN_FREE_BYTES = 100 * 1024 * 1024


class FrameStore(Protocol):
    def ping(self) -> None: ...  # raise FrameStoreError unless a frame could be stored now
    def put(self, key: str, data: bytes) -> str: ...
    def get(self, key: str) -> bytes: ...
    def delete_session(self, session_id: str) -> None: ...


def frame_key(session_id: str, seq: int, sha256: str) -> str:
    """The store key of one frame (``sha256``: of its bytes, hex). Raises ``FrameStoreError``
    for an id or digest that is not ours."""
    key = f"{session_id}/{seq:06d}-{sha256[:16]}.jpg"
    if not _KEY.fullmatch(key):
        raise FrameStoreError(f"bad frame key {key!r}")
    return key


class LocalFrameStore:
    """One append-only file per session under one folder: ``<root>/<session_id>.frames``.

    ``put`` appends the JPEG and returns the stored key ``<key>@<offset>+<length>``, its byte
    range in that file; the session's frames go with one unlink. A file per frame cost more:
    on an ext4 without a journal (this VM's disk) creating a file skips every inode deleted in
    the last minutes, and with frames deleted after each decision that was 0.4 ms of kernel
    time per frame under load, 5% of the server's CPU. Frames stored the earlier way, one file
    per frame (``<root>/<key>``, the key without a range), are still read and deleted.

    The folder must be on a local filesystem: appends from several processes land whole only
    there (not on NFS); servers on several hosts share frames through S3. Files are created
    readable by the service's user only.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def ping(self) -> None:
        """Create and remove a file in the folder, and check the disk has room."""
        probe = self.root / f".write-check-{os.getpid()}-{threading.get_ident()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
            free = shutil.disk_usage(self.root).free
        except OSError as exc:
            raise FrameStoreError(f"frames cannot be written to {self.root}: {exc.strerror or exc}") from None
        if free < MIN_FREE_BYTES:
            raise FrameStoreError(f"less than {MIN_FREE_BYTES >> 20} MB free in {self.root}")

    def _file(self, session_id: str) -> Path:
        return self.root / f"{session_id}.frames"

    def put(self, key: str, data: bytes) -> str:
        # The database row that points at the bytes is inserted after this returns, so bytes
        # of a frame the database then refuses are never referenced (and go with the file).
        if not _KEY.fullmatch(key):
            raise FrameStoreError(f"bad frame key {key!r}")
        path = self._file(key[:32])
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except FileNotFoundError:
                self.root.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                # One write with O_APPEND lands whole at the end of the file, even while
                # another worker appends to the same session; the offset is read back after it.
                written = os.write(fd, data)
                end = os.lseek(fd, 0, os.SEEK_CUR)
            finally:
                os.close(fd)
        except OSError as exc:
            raise FrameStoreError(f"cannot write frame: {exc.strerror}") from None
        if written != len(data):
            raise FrameStoreError("cannot write frame: the disk took only part of it")
        return f"{key}@{end - written}+{written}"

    def get(self, key: str) -> bytes:
        missing = FrameStoreError("frame is not in the store (deleted or never written)")
        if _KEY.fullmatch(key):  # stored as a file of its own, before session files
            try:
                return (self.root / key).read_bytes()
            except OSError:
                raise missing from None
        m = _LOCAL_KEY.fullmatch(key)
        if not m:
            raise FrameStoreError(f"bad frame key {key!r}")
        offset, length = int(m["offset"]), int(m["length"])
        try:
            fd = os.open(self._file(m["session"]), os.O_RDONLY)
            try:
                data = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        except OSError:
            raise missing from None
        if len(data) != length:
            raise missing
        return data

    def delete_session(self, session_id: str) -> None:
        """Delete every frame of a session (nothing to do when none was kept)."""
        if not _SESSION.fullmatch(session_id):
            raise FrameStoreError(f"bad session id {session_id!r}")
        folder = self.root / session_id  # frames stored one file each, before session files
        try:
            self._file(session_id).unlink(missing_ok=True)
            if folder.is_dir():
                for path in folder.iterdir():
                    path.unlink(missing_ok=True)
                folder.rmdir()
        except OSError as exc:
            raise FrameStoreError(f"cannot delete frames: {exc.strerror}") from None


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

    def ping(self) -> None:
        """The bucket answers (``HeadBucket``: it exists and these credentials reach it)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # botocore raises many types; all mean "cannot store"
            raise FrameStoreError(f"S3 bucket {self.bucket} does not answer: {type(exc).__name__}") from None

    def put(self, key: str, data: bytes) -> str:
        if not _KEY.fullmatch(key):
            raise FrameStoreError(f"bad frame key {key!r}")
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data,
                                   ContentType="image/jpeg", ServerSideEncryption="AES256")
        except Exception as exc:  # botocore raises many types; all mean "not stored"
            raise FrameStoreError(f"cannot write frame to S3: {type(exc).__name__}") from None
        return key

    def get(self, key: str) -> bytes:
        if not _KEY.fullmatch(key):
            raise FrameStoreError(f"bad frame key {key!r}")
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except Exception as exc:
            raise FrameStoreError(f"cannot read frame from S3: {type(exc).__name__}") from None

    def delete_session(self, session_id: str) -> None:
        """Delete every object of a session (paginated, 1000 keys per request)."""
        if not _SESSION.fullmatch(session_id):
            raise FrameStoreError(f"bad session id {session_id!r}")
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}{session_id}/")
            for page in pages:
                keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
        except Exception as exc:
            raise FrameStoreError(f"cannot delete frames in S3: {type(exc).__name__}") from None


def open_frame_store(kind: str, *, frame_dir: str, bucket: str | None = None, prefix: str = "frames/",
                     region: str | None = None, endpoint_url: str | None = None) -> FrameStore:
    """The configured frame store. Raises ``ConfigError`` for an unknown kind or no bucket."""
    if kind == "local":
        return LocalFrameStore(frame_dir)
    if kind == "s3":
        return S3FrameStore(bucket or "", prefix, region, endpoint_url)
    raise ConfigError(f"unknown frame store {kind!r}")
