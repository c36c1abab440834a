"""The whole tenant over /waha: its export (queued, built by the job, downloaded until it expires) and the owner's
deletion request (confirmed with the slug; the tenant is deactivated at once)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Tenant, TenantExport
from portal.services import privacy
from tests.builders import make_tenant, make_token, new_session
from tests.helpers import Api


@pytest.fixture
def owner_api(client: Any, tenant: Any) -> Api:
    return Api(client, make_token(tenant, ["contacts:privacy", "tenant:delete", "sessions:read"]))


def test_an_export_is_queued_built_listed_and_downloaded(owner_api, tenant, run_jobs):
    new_session(tenant, "Support")

    queued = owner_api.call("POST", "/waha/tenant/exports")

    assert queued.status_code == 202, queued.get_json()
    assert queued.get_json()["state"] == "queued" and queued.get_json()["downloadUrl"] is None
    again = owner_api.call("POST", "/waha/tenant/exports")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "export_in_progress"

    run_jobs()

    [listed] = owner_api.get("/waha/tenant/exports").get_json()["data"]
    assert listed["id"] == queued.get_json()["id"] and listed["state"] == "ready" and listed["size"] > 0
    download = owner_api.get(listed["downloadUrl"])
    assert download.status_code == 200 and download.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.get_data()))
    assert [s["name"] for s in json.loads(archive.read("sessions.json"))] == ["Support"]
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id)))
    assert {"tenant.export_request", "tenant.export_download"} <= actions


def test_an_expired_export_is_gone_and_another_tenants_is_not_found(owner_api, client, tenant):
    export = privacy.request_export(tenant, privacy_actor())
    privacy.build_export(export.id)
    path = f"/waha/tenant/exports/{export.id}/download"

    other = Api(client, make_token(make_tenant("globex", name="Globex"), ["contacts:privacy"]))
    refused = other.get(path)
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "export_not_found"
    for bad in ("abc", "9" * 30, "-1"):
        assert owner_api.get(f"/waha/tenant/exports/{bad}/download").status_code == 404

    db.session.expire_all()
    stored = db.session.get(TenantExport, export.id)
    privacy.expire_exports(stored.expires_at + timedelta(seconds=1))
    gone = owner_api.get(path)
    assert gone.status_code == 410 and gone.get_json()["error"]["code"] == "export_expired"


def test_exports_need_the_privacy_scope(client, tenant):
    reader = Api(client, make_token(tenant, ["sessions:read"]))

    assert reader.call("POST", "/waha/tenant/exports").status_code == 403
    assert db.session.scalar(select(TenantExport.id)) is None


def test_deletion_needs_the_slug_then_deactivates_the_tenant(owner_api, tenant):
    wrong = owner_api.call("POST", "/waha/tenant/deletion", json={"confirm": "not-it"})
    assert wrong.status_code == 400 and wrong.get_json()["error"]["details"]["fields"][0]["field"] == "confirm"

    answer = owner_api.call("POST", "/waha/tenant/deletion", json={"confirm": tenant.slug})

    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["tenant"] == tenant.slug
    db.session.expire_all()
    stored = db.session.get(Tenant, tenant.id)
    assert stored.is_active is False and stored.deletion_scheduled_for is not None
    assert answer.get_json()["scheduledFor"] == stored.deletion_scheduled_for.isoformat()
    # its tokens stop working with it: the cancel is the owner's in the portal, or a platform admin's
    assert owner_api.get("/waha/sessions").status_code == 401


def test_deletion_needs_the_owners_scope(client, tenant):
    admin_token = Api(client, make_token(tenant, ["contacts:privacy"]))

    refused = admin_token.call("POST", "/waha/tenant/deletion", json={"confirm": tenant.slug})

    assert refused.status_code == 403
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).deletion_scheduled_for is None


def privacy_actor() -> Any:
    from tests.builders import TEST_ACTOR

    return TEST_ACTOR
