"""Fetch the front-end assets named in static/assets.json from the npm registry, checked by integrity hash.

Nothing fetched here is committed: static/vendor/ is ignored by git.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = "https://registry.npmjs.org"


def fetch(package: str, version: str, integrity: str, files: dict[str, str]) -> None:
    targets = {ROOT / dest: src for src, dest in files.items()}
    if all(path.exists() for path in targets):
        return
    name = package.split("/")[-1]
    url = f"{REGISTRY}/{package}/-/{name}-{version}.tgz"
    print(f"==> fetching {package}@{version}")
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        sys.exit(f"integrity mismatch for {package}@{version}: got {algorithm}-{actual}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for path, src in targets.items():
            member = archive.extractfile(f"package/{src}")
            if member is None:
                sys.exit(f"{src} is missing from {package}@{version}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(member.read())


def main() -> None:
    manifest = json.loads((ROOT / "static" / "assets.json").read_text())
    for asset in manifest["assets"]:
        fetch(asset["package"], asset["version"], asset["integrity"], asset["files"])


if __name__ == "__main__":
    main()
