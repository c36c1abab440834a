"""The data protection jobs run by a real RQ worker: the tenant's export queued from the service, and the upkeep
(expired exports, tenants whose deletion is due)."""

from __future__ import annotations

from datetime import timedelta

from portal.extensions import db
from portal.jobs.schedule import SCHEDULE
from portal.models import Tenant, TenantExport, utcnow
from portal.queue import JOB_PRIVACY_UPKEEP
from portal.services import privacy
from tests.builders import TEST_ACTOR, make_tenant


def test_requested_export_is_built_by_the_worker(tenant, run_jobs):
    export = privacy.request_export(tenant, TEST_ACTOR)

    assert run_jobs() >= 1

    db.session.expire_all()
    assert db.session.get(TenantExport, export.id).state == "ready"


def test_upkeep_job_deletes_the_tenants_whose_grace_period_is_over(ctx, run_jobs):
    from rq import Queue

    from portal.extensions import redis_store

    gone, kept = make_tenant("gone", name="Gone"), make_tenant("kept", name="Kept")
    gone.deletion_scheduled_for = utcnow() - timedelta(minutes=1)
    gone.is_active = False
    kept.deletion_scheduled_for = utcnow() + timedelta(days=3)
    db.session.commit()
    gone_id, kept_id = gone.id, kept.id
    assert any(entry["func"] == JOB_PRIVACY_UPKEEP for entry in SCHEDULE)

    Queue("maintenance", connection=redis_store.client).enqueue(JOB_PRIVACY_UPKEEP)
    run_jobs()

    db.session.expire_all()
    assert db.session.get(Tenant, gone_id) is None and db.session.get(Tenant, kept_id) is not None
