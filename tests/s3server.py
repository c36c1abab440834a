"""An S3-compatible server for the tests: moto's standalone server (`moto_server`, pinned in
requirements-dev.txt) on a free loopback port. It speaks the S3 wire protocol, so the portal's S3 backend is tested
through boto3 and HTTP exactly as against a real bucket.

`MotoServer.start()` raises when the server cannot start: tests that need S3 fail, never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The app settings a test that changes the media backend puts back afterwards.
MEDIA_SETTINGS = (
    "MEDIA_ROOT",
    "MEDIA_STORAGE",
    "MEDIA_S3_ENDPOINT_URL",
    "MEDIA_S3_REGION",
    "MEDIA_S3_ACCESS_KEY_ID",
    "MEDIA_S3_SECRET_ACCESS_KEY",
    "MEDIA_PRESIGNED_URLS",
    "MEDIA_PRESIGNED_TTL",
)
BUCKET = "portal-media"
REGION = "us-east-1"
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _executable() -> str:
    beside = Path(sys.executable).parent / "moto_server"
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if not found:
        raise RuntimeError("moto_server is not installed: pip install -r requirements-dev.txt (moto[server])")
    return found


class MotoServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process, self.port = process, port
        self.url = f"http://127.0.0.1:{port}"

    @classmethod
    def start(cls, timeout: float = 30.0) -> MotoServer:
        port = _free_port()
        process = subprocess.Popen(
            [_executable(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
        server = cls(process, port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                error = (process.stderr.read() if process.stderr else b"").decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto_server exited with {process.returncode} at start:\n{error}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    server.client().list_buckets()
                    return server
            except OSError:
                time.sleep(0.1)
            except Exception:
                time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"moto_server did not answer on port {port} within {timeout:.0f} s")

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def settings(self, prefix: str) -> dict[str, str]:
        """The portal's settings for a bucket on this server (the bucket is created when missing)."""
        client = self.client()
        try:
            client.create_bucket(Bucket=BUCKET)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        return {
            "MEDIA_STORAGE": f"s3://{BUCKET}/{prefix}",
            "MEDIA_S3_ENDPOINT_URL": self.url,
            "MEDIA_S3_REGION": REGION,
            "MEDIA_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "MEDIA_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
