"""Quotas at the doors that are not sends: inbound media over the storage quota keeps its message but not the
file, uploads stop, and a campaign audience larger than the month's allowance is refused."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Campaign, Message
from portal.services import campaigns, events, quotas
from portal.services.quotas import counters, reconcile
from portal.storage import storage
from tests.builders import TEST_ACTOR, relay_inbound_media, working_session
from tests.services.test_media import PNG


def _limit(tenant: Any, **limits: int | None) -> None:
    for column, value in limits.items():
        setattr(tenant, column, value)
    db.session.commit()


def test_inbound_media_over_the_storage_quota_keeps_the_message_not_the_file(app, client, tenant, sim, run_jobs):
    _limit(tenant, max_media_bytes=len(PNG) + 10)
    session = working_session(tenant, sim, "Pictures")
    first = relay_inbound_media(client, sim, session, PNG)
    events.process_batch()
    run_jobs()
    second = relay_inbound_media(client, sim, session, PNG)
    events.process_batch()
    run_jobs()
    db.session.expire_all()
    kept = db.session.scalar(select(Message.media).where(Message.waha_message_id == first))
    skipped = db.session.scalar(select(Message.media).where(Message.waha_message_id == second))
    assert kept["status"] == "stored"
    assert skipped["status"] == "refused" and skipped["quota_exceeded"] is True and "key" not in skipped
    assert counters.take_media(tenant.id, 0, None)[1] == len(PNG)
    with pytest.raises(quotas.QuotaExceeded) as refused:
        _limit(tenant, max_media_bytes=len(PNG))
        quotas.check_upload(tenant)
    assert refused.value.details["quota"] == "media_storage"
    storage().delete(kept["key"])


def test_the_media_count_is_rebuilt_from_the_stored_files(app, client, tenant, sim, run_jobs):
    session = working_session(tenant, sim, "Pictures")
    relay_inbound_media(client, sim, session, PNG)
    events.process_batch()
    run_jobs()
    reconcile.recount_media()
    assert counters.take_media(tenant.id, 0, None)[1] == len(PNG)


def _csv(n: int) -> bytes:
    return ("phone,name\n" + "".join(f"+49170{1000000 + i:07d},P{i}\n" for i in range(n))).encode()


def test_a_campaign_larger_than_the_months_allowance_is_refused(tenant, sim):
    session = working_session(tenant, sim, "Sales")
    _limit(tenant, max_campaign_recipients_per_month=5)
    with pytest.raises(quotas.QuotaExceeded) as refused:
        campaigns.create_campaign(
            tenant, TEST_ACTOR, name="Big", session_ids=[session.id], template="Hi {{name}}", csv_content=_csv(6)
        )
    assert refused.value.details["quota"] == "campaign_recipients_per_month"
    assert db.session.scalar(select(Campaign)) is None


def test_the_import_takes_the_recipients_and_fails_the_next_campaign_over_the_allowance(tenant, sim):
    session = working_session(tenant, sim, "Sales")
    _limit(tenant, max_campaign_recipients_per_month=5)
    first = campaigns.create_campaign(
        tenant, TEST_ACTOR, name="One", session_ids=[session.id], template="Hi {{name}}", csv_content=_csv(3)
    )
    second = campaigns.create_campaign(
        tenant, TEST_ACTOR, name="Two", session_ids=[session.id], template="Hi {{name}}", csv_content=_csv(2)
    )
    third = campaigns.create_campaign(
        tenant, TEST_ACTOR, name="Three", session_ids=[session.id], template="Hi {{name}}", csv_content=_csv(1)
    )
    campaigns.import_audience(first.id)
    campaigns.import_audience(second.id)
    campaigns.import_audience(third.id)
    states = {c.name: (c.state, c.error) for c in db.session.scalars(select(Campaign))}
    assert states["One"][0] == "scheduled" and states["Two"][0] == "scheduled"
    assert states["Three"][0] == "failed" and "Campaign recipients per month" in states["Three"][1]
