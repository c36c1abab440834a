"""The S3 backend: objects in one bucket under a prefix, on AWS S3 or any S3-compatible server (MinIO, Ceph,
moto's server in the tests). Every web host and worker sees the same files.

Reads are streamed: `open` answers a seekable reader that fetches the object from where it is read (an HTTP Range
request), so a browser's Range request moves only the bytes it asks for. Writes stream too (`upload_fileobj`:
multipart for large files). A missing object is FileNotFoundError, as on the local backend; any other failure of
the store (unreachable, refused credentials, missing bucket) is StorageUnavailable.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from portal.storage.errors import StorageUnavailable, check_key

_MISSING = {"404", "NoSuchKey", "NotFound"}


def _is_missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) in _MISSING


class _Counting(io.RawIOBase):
    """Counts what an upload reads from the caller's stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.count = stream, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class S3Reader(io.RawIOBase):
    """A seekable reader of one object: each read continues one GET from the current position; a seek drops it
    and the next read asks for the object from there (Range: bytes=<position>-)."""

    def __init__(self, store: S3Storage, key: str, size: int) -> None:
        self.store, self.key, self.length = store, key, size
        self.position = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        target = max(base + offset, 0)
        if target != self.position:
            self._drop()
            self.position = target
        return self.position

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.length or len(buffer) == 0:
            return 0
        if self._body is None:
            self._body = self.store._get(self.key, self.position)
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:
            self._drop()
            raise StorageUnavailable(f"reading {self.key!r} from the bucket failed: {exc}") from exc
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        self._drop()
        super().close()


_SESSION: Any = None


def _boto_session() -> Any:
    """One boto3 session per process, made lazily. A worker makes it before forking its job processes
    (`flask worker` warms the storage), so each job's client reuses the service model the parent already loaded
    instead of importing boto3 and reading it again (about 0.3 s of CPU per job)."""
    global _SESSION
    if _SESSION is None:
        import boto3

        _SESSION = boto3.session.Session()
    return _SESSION


class S3Storage:
    """Objects in `bucket` under `prefix`; the client is built from the given endpoint and credentials, each
    falling back to boto3's own chain (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    instance roles) when not given."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        config = Config(
            signature_version="s3v4",
            # path-style works on every S3-compatible server; AWS itself chooses virtual hosts
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        self.client = _boto_session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=config,
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _object(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, what: str, key: str, exc: Exception) -> StorageUnavailable:
        return StorageUnavailable(f"{what} {key!r} in {self.describe()} failed: {exc}")

    def put(self, key: str, stream: BinaryIO, mimetype: str) -> int:
        """Upload what `stream` holds under `key` (replacing what was there); the size written."""
        counting, name = _Counting(stream), self._object(key)
        try:
            self.client.upload_fileobj(
                counting,
                self.bucket,
                name,
                ExtraArgs={"ContentType": mimetype or "application/octet-stream"},
            )
        except Exception as exc:
            raise self._fail("storing", key, exc) from exc
        return counting.count

    def save(self, key: str, data: bytes, mimetype: str) -> None:
        """Store `data` under `key`, replacing what was there."""
        self.put(key, io.BytesIO(data), mimetype)

    def size(self, key: str) -> int:
        """The stored size in bytes; FileNotFoundError when missing."""
        name = self._object(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(key) from None
            raise self._fail("looking up", key, exc) from exc
        return int(head["ContentLength"])

    def _get(self, key: str, start: int) -> Any:
        name = self._object(key)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=name, Range=f"bytes={start}-")
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(key) from None
            raise self._fail("reading", key, exc) from exc
        return answer["Body"]

    def open(self, key: str) -> BinaryIO:
        """A seekable reader of the object (the caller closes it); FileNotFoundError when missing."""
        return io.BufferedReader(S3Reader(self, key, self.size(key)), buffer_size=256 * 1024)

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""
        name = self._object(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            if not _is_missing(exc):
                raise self._fail("deleting", key, exc) from exc

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def presigned_url(self, key: str, *, expires: int, mimetype: str, disposition: str) -> str | None:
        """A URL that fetches the object for `expires` seconds, answered with this Content-Type and
        Content-Disposition (signed into the URL) and never kept by a shared cache."""
        name = self._object(key)
        try:
            return str(
                self.client.generate_presigned_url(
                    "get_object",
                    Params={
                        "Bucket": self.bucket,
                        "Key": name,
                        "ResponseContentType": mimetype,
                        "ResponseContentDisposition": disposition,
                        "ResponseCacheControl": f"private, max-age={expires}",
                    },
                    ExpiresIn=expires,
                )
            )
        except Exception as exc:
            raise self._fail("signing a URL for", key, exc) from exc

    def list_keys(self) -> list[str]:
        """Every stored key under the prefix, sorted."""
        start = f"{self.prefix}/" if self.prefix else ""
        found: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
                found.extend(item["Key"][len(start) :] for item in page.get("Contents", []))
        except Exception as exc:
            raise self._fail("listing", start, exc) from exc
        return sorted(found)
