"""Media storage on both backends (a local folder, a bucket on moto's S3 server): the storage interface, serving
through the authorised routes (streamed with Range, or a presigned redirect), the files deleted with their rows,
and `flask media migrate` copying a local folder into a bucket."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from portal.extensions import db
from portal.models import Contact, Message
from portal.services import maintenance, media_files, sessions
from portal.services.audit import Actor
from portal.storage import LocalStorage, new_key, parse_location, storage
from portal.storage.migrate import copy_all
from tests.builders import make_tenant, new_session, stored_message
from tests.s3server import MEDIA_SETTINGS

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40  # 10 249 bytes
ACTOR = Actor(type="system", label="test")


def _message_with_file(tenant: Any, data: bytes = PDF, mimetype: str = "application/pdf", name: str = "report.pdf"):
    key = new_key(tenant.id, "m", ".pdf")
    storage().save(key, data, mimetype)
    session = new_session(tenant, f"Files {key[-8:]}")
    media = {"kind": "document", "mimetype": mimetype, "filename": name, "status": "stored", "key": key}
    return stored_message(tenant, session, direction="in", status="DEVICE", body=None, media=media), key


# ---- the interface --------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_a_file_put_from_a_stream_reads_back_whole_and_from_any_position(app, ctx, media_backend):
    store = storage()
    key = new_key(1, "m", ".bin")

    assert store.put(key, io.BytesIO(PDF), "application/pdf") == len(PDF)

    assert store.exists(key) and store.size(key) == len(PDF)
    with store.open(key) as handle:
        assert handle.read() == PDF
    with store.open(key) as handle:
        handle.seek(5000)
        assert handle.read(10) == PDF[5000:5010]
        handle.seek(-6, io.SEEK_END)
        assert handle.read() == PDF[-6:]
    assert key in store.list_keys()
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting what is gone is no error
    with pytest.raises(FileNotFoundError):
        store.open(key)
    with pytest.raises(FileNotFoundError):
        store.size(key)


@pytest.mark.parametrize("key", ["../x", "a/../../b", "/abs", "a//b", "", "a/b c", "t/1/.hidden/..x"])
def test_a_key_that_could_leave_its_place_is_refused(ctx, media_backend, key):
    with pytest.raises(ValueError):
        storage().save(key, b"x", "text/plain")


def test_new_keys_name_the_tenant_and_nothing_guessable():
    first, second = new_key(7, "m", ".png"), new_key(7, "m", ".png")
    assert re.fullmatch(r"t/7/m/[0-9a-f]{32}\.png", first) and first != second


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("", None),
        ("local", None),
        ("s3://media", ("media", "")),
        ("s3://media.eu-1/portal/prod/", ("media.eu-1", "portal/prod")),
    ],
)
def test_media_storage_setting_names_a_folder_or_a_bucket(raw, parsed):
    assert parse_location(raw) == parsed


@pytest.mark.parametrize(
    "raw", ["s3://", "s3://UPPER", "s3://ab", "http://bucket/x", "s3://bucket/../up", "s3://b-1/x?y=1"]
)
def test_a_bad_media_storage_setting_is_a_configuration_problem(raw):
    from portal.config import load_settings

    _values, problems = load_settings({"MEDIA_STORAGE": raw})
    assert len(problems) == 1 and problems[0].startswith("MEDIA_STORAGE")


# ---- files go with their rows ---------------------------------------------------------------------------------


def test_deleting_a_session_deletes_its_messages_files(tenant, sim, media_backend):
    from tests.builders import working_session

    session = working_session(tenant, sim, "Going")
    kept_message, kept = _message_with_file(tenant)
    keys = []
    for n in range(3):
        key = new_key(tenant.id, "m", ".pdf")
        storage().save(key, PDF, "application/pdf")
        keys.append(key)
        stored_message(tenant, session, direction="in", waha_message_id=f"f{n}", media={"status": "stored", "key": key})

    sessions.delete_session(tenant, session.id, ACTOR)

    assert not any(storage().exists(key) for key in keys)
    assert storage().exists(kept) and db.session.get(Message, kept_message.id) is not None


@pytest.mark.smoke
def test_a_tenants_and_a_contacts_files_are_found_and_deleted(tenant, media_backend):
    message, message_key = _message_with_file(tenant)
    avatar_key = new_key(tenant.id, "a", ".png")
    storage().save(avatar_key, b"png", "image/png")
    contact = Contact(
        tenant_id=tenant.id, chat_id=message.chat_id, phone="491709999999", tags=[], avatar_key=avatar_key
    )
    db.session.add(contact)
    _other_message, other_key = _message_with_file(make_tenant("globex"))
    db.session.commit()

    assert sorted(media_files.tenant_keys(tenant.id)) == sorted([message_key, avatar_key])
    assert sorted(media_files.contact_keys(contact)) == sorted([message_key, avatar_key])
    assert media_files.delete_files(media_files.tenant_keys(tenant.id)) == 2

    assert not storage().exists(message_key) and not storage().exists(avatar_key) and storage().exists(other_key)


def test_retention_deletes_the_objects_of_pruned_messages(tenant, media_backend):
    from datetime import timedelta

    from portal.models import utcnow

    tenant.retention_messages_days = 30
    old, key = _message_with_file(tenant)
    # a whole month past the retention: on PostgreSQL retention goes by monthly partitions
    old.created_at = utcnow() - timedelta(days=70)
    db.session.commit()

    counts = maintenance.prune()

    assert counts["messages"] == 1 and counts["media_files"] == 1 and not storage().exists(key)


# ---- migrating a folder into a bucket -------------------------------------------------------------------------


def test_migrate_copies_every_file_once_and_verifies_it(app, tmp_path, s3_server):
    from portal.storage.s3 import S3Storage

    source = LocalStorage(tmp_path)
    files = {"t/1/m/aa.pdf": PDF, "7/3/12.jpeg": b"jpeg" * 100, "avatars/7/3.png": b"png"}
    for key, data in files.items():
        source.save(key, data, "application/octet-stream")
    (tmp_path / "7" / ".part-abc").write_bytes(b"half a write")  # a write in progress is not a file
    settings = s3_server.settings("migrate-test")
    target = S3Storage(
        "portal-media",
        "migrate-test",
        endpoint_url=s3_server.url,
        region="us-east-1",
        access_key_id=settings["MEDIA_S3_ACCESS_KEY_ID"],
        secret_access_key=settings["MEDIA_S3_SECRET_ACCESS_KEY"],
    )
    target.save("7/3/12.jpeg", b"jpe", "image/jpeg")  # an earlier copy cut short: wrong size, copied again

    dry = copy_all(source, target, dry_run=True)
    first = copy_all(source, target)
    again = copy_all(source, target)

    assert (dry.copied, dry.skipped, dry.failed) == (3, 0, 0)
    assert (first.copied, first.skipped, first.failed) == (3, 0, 0)
    assert (again.copied, again.skipped, again.failed) == (0, 3, 0)
    for key, data in files.items():
        with target.open(key) as handle:
            assert handle.read() == data
    assert sorted(target.list_keys()) == sorted(files)


def test_migrate_command_copies_into_the_configured_bucket_and_reports(app, tmp_path, s3_server):
    saved = {name: app.config.get(name) for name in MEDIA_SETTINGS}
    LocalStorage(tmp_path).save("t/1/m/bb.pdf", PDF, "application/pdf")
    runner = app.test_cli_runner()
    try:
        app.config["MEDIA_ROOT"] = str(tmp_path)
        refused = runner.invoke(args=["media", "migrate"])
        app.config.update(s3_server.settings("migrate-cli"))
        first = runner.invoke(args=["media", "migrate"])
        second = runner.invoke(args=["media", "migrate"])
        with app.app_context():
            assert storage().size("t/1/m/bb.pdf") == len(PDF)
    finally:
        app.config.update(saved)

    assert refused.exit_code != 0 and "MEDIA_STORAGE names no bucket" in refused.output
    assert first.exit_code == 0 and "copied 1, already there 0, failed 0" in first.output
    assert second.exit_code == 0 and "copied 0, already there 1, failed 0" in second.output
