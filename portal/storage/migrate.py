"""`flask media migrate`: copy the files of the local folder (MEDIA_ROOT) into the configured bucket.

Keys stay the same, so the rows that name them need no change. Idempotent and resumable: a key the bucket already
holds with the same size is skipped, so an interrupted run is simply run again. Every copy is verified (the
object's size read back from the bucket); a mismatch is counted as failed, and the command exits non-zero when any
file failed. The local files are left in place: remove MEDIA_ROOT once the portal serves from the bucket.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass, field

import click
from flask import current_app
from flask.cli import AppGroup

from portal.storage import LocalStorage, Storage, check_key, storage

log = logging.getLogger(__name__)

media_cli = AppGroup("media", help="Stored media files.")


@dataclass
class Counts:
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"copied {self.copied}, already there {self.skipped}, failed {self.failed}"


def copy_all(source: LocalStorage, target: Storage, *, dry_run: bool = False) -> Counts:
    """Copy every file of `source` missing (or of another size) in `target`, verifying each copy's size."""
    counts = Counts()
    for key in source.list_keys():
        try:
            check_key(key)
            size = source.size(key)
            try:
                if target.size(key) == size:
                    counts.skipped += 1
                    continue
            except FileNotFoundError:
                pass
            if dry_run:
                counts.copied += 1
                continue
            with source.open(key) as handle:
                target.put(key, handle, mimetypes.guess_type(key)[0] or "application/octet-stream")
            stored = target.size(key)
            if stored != size:
                raise OSError(f"the bucket holds {stored} bytes, the file has {size}")
            counts.copied += 1
        except (OSError, ValueError) as exc:
            counts.failed += 1
            counts.failures.append(f"{key}: {exc}")
            log.warning("media migrate: %s not copied: %s", key, exc)
    return counts


@media_cli.command("migrate")
@click.option("--dry-run", is_flag=True, help="Count what would be copied; copy nothing.")
def migrate_command(dry_run: bool) -> None:
    """Copy the files under MEDIA_ROOT into the bucket MEDIA_STORAGE names (idempotent, resumable)."""
    target = storage()
    if isinstance(target, LocalStorage):
        raise click.ClickException("MEDIA_STORAGE names no bucket (set MEDIA_STORAGE=s3://bucket/prefix first).")
    source = LocalStorage(current_app.config["MEDIA_ROOT"])
    click.echo(f"Copying {source.describe()} -> {target.describe()}{' (dry run)' if dry_run else ''}")
    counts = copy_all(source, target, dry_run=dry_run)
    for failure in counts.failures:
        click.echo(f"failed: {failure}", err=True)
    click.echo(("Would copy: " if dry_run else "") + counts.line())
    if counts.failed:
        raise click.ClickException(f"{counts.failed} file(s) were not copied; run the command again to retry them.")
