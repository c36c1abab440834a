"""A campaign's tag audience is selected in SQL (PostgreSQL and SQLite) and written in batches; the daily cap
counts the tenant's days, midnight to midnight on its own clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select

from portal.extensions import db
from portal.models import Campaign, CampaignRecipient, CampaignReject, Contact, Tenant
from portal.services import campaigns, optouts, outreach
from portal.services.campaigns import audience
from portal.services.campaigns.dispatch import campaign_gate, daily_cap_hold, tenant_day
from portal.services.outreach import Hold
from tests.builders import TEST_ACTOR, make_tenant, working_session


def _contacts(tenant: Tenant, rows: list[tuple[str, list[str], str | None]]) -> None:
    """Contacts of the tenant: (chat id, tags, saved name)."""
    db.session.execute(
        insert(Contact),
        [{"tenant_id": tenant.id, "chat_id": c, "tags": tags, "saved_name": name} for c, tags, name in rows],
    )
    db.session.commit()


def _tag_campaign(tenant: Tenant, session: Any, tag: str) -> Campaign:
    campaign = campaigns.create_campaign(
        tenant, TEST_ACTOR, name="Tagged", session_ids=[session.id], template="Hi {{name}} ({{phone}})", tag=tag
    )
    campaigns.import_audience(campaign.id)
    db.session.expire_all()
    return db.session.get(Campaign, campaign.id)


@pytest.mark.smoke
def test_tag_audience_is_selected_in_sql_without_case_and_skips_opted_out_and_non_numbers(tenant, sim):
    session = working_session(tenant, sim, "Tags")
    other = make_tenant("other-tags")
    _contacts(
        tenant,
        [
            ("491701000001@c.us", ["VIP", "berlin"], "Ana"),
            ("491701000002@c.us", ["customers"], "Ben"),  # no tag
            ("491701000003@c.us", ["vip"], None),
            ("4917010@lid", ["Vip"], "Linked"),  # not a phone number
            ("491701000004@c.us", [], "Dan"),
            ("491701000005@c.us", ["vipers"], "Eve"),  # a longer tag is another tag
            ("491701000006@c.us", ["vip"], "Fay"),  # opted out
        ],
    )
    _contacts(other, [("491701000007@c.us", ["vip"], "Other tenant")])
    optouts.add(tenant, TEST_ACTOR, "+491701000006")

    campaign = _tag_campaign(tenant, session, "vip")

    assert (campaign.state, campaign.total_rows, campaign.accepted, campaign.rejected) == ("scheduled", 4, 2, 2)
    rows = db.session.execute(
        select(CampaignRecipient.line, CampaignRecipient.chat_id, CampaignRecipient.values)
        .where(CampaignRecipient.campaign_id == campaign.id)
        .order_by(CampaignRecipient.line)
    ).all()
    assert [(r.line, r.chat_id, r.values["phone"]) for r in rows] == [
        (1, "491701000001@c.us", "+491701000001"),
        (2, "491701000003@c.us", "+491701000003"),
    ]
    assert rows[0].values["name"] == "Ana"
    rejects = db.session.execute(
        select(CampaignReject.line, CampaignReject.reason)
        .where(CampaignReject.campaign_id == campaign.id)
        .order_by(CampaignReject.line)
    ).all()
    assert [tuple(r) for r in rejects] == [(3, audience.INVALID_PHONE), (4, audience.OPTED_OUT)]


@pytest.mark.smoke
def test_tag_audience_comes_in_batches_with_lines_counted_across_them(tenant):
    _contacts(tenant, [(f"4917020{i:05d}@c.us", ["Kunden"] if i % 3 else ["other"], None) for i in range(1, 301)])

    batches = list(audience.tagged_batches(tenant.id, "KUNDEN", batch=64))

    assert len(batches) > 3
    assert all(len(b.rows) <= 64 for b in batches)
    lines = [row.line for b in batches for row in b.rows]
    assert lines == list(range(1, 201))
    assert sum(b.total for b in batches) == 200
    assert {row.chat_id for b in batches for row in b.rows} == {f"4917020{i:05d}@c.us" for i in range(1, 301) if i % 3}


@pytest.mark.smoke
def test_tag_with_letters_beyond_ascii_matches_without_case(tenant):
    _contacts(tenant, [("491703000001@c.us", ["Ärzte"], None), ("491703000002@c.us", ["ärzte"], None)])
    _contacts(tenant, [("491703000003@c.us", ["arzte"], None)])

    rows = [row.chat_id for b in audience.tagged_batches(tenant.id, "ÄRZTE") for row in b.rows]

    assert sorted(rows) == ["491703000001@c.us", "491703000002@c.us"]


# ---- the daily cap on the tenant's clock -------------------------------------------------------------------------


def _capped_campaign(tenant: Tenant, session: Any, cap: int) -> Campaign:
    content = b"phone\n+491704000001\n+491704000002\n+491704000003\n"
    campaign = campaigns.create_campaign(
        tenant,
        TEST_ACTOR,
        name="Capped",
        session_ids=[session.id],
        template="Hello",
        csv_content=content,
        daily_cap=cap,
    )
    campaigns.import_audience(campaign.id)
    return db.session.get(Campaign, campaign.id)


def _sent_at(campaign: Campaign, *moments: datetime) -> None:
    rows = db.session.scalars(
        select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign.id).order_by(CampaignRecipient.id)
    ).all()
    for row, moment in zip(rows, moments, strict=False):
        row.state, row.sent_at = "sent", moment
    db.session.commit()


@pytest.mark.smoke
def test_daily_cap_counts_the_tenants_day_not_the_utc_day(tenant, sim):
    # São Paulo is UTC-3: its day of 5 December runs from 03:00 UTC on the 5th to 03:00 UTC on the 6th
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="America/Sao_Paulo")
    session = working_session(tenant, sim, "Capped")
    campaign = _capped_campaign(tenant, session, cap=2)
    # two sends on the evening of 5 December in São Paulo, after midnight UTC
    _sent_at(campaign, datetime(2026, 12, 6, 0, 30, tzinfo=UTC), datetime(2026, 12, 6, 1, 0, tzinfo=UTC))

    before_local_midnight = datetime(2026, 12, 6, 2, 59, tzinfo=UTC)  # 23:59 on the 5th in São Paulo
    after_local_midnight = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)  # 00:00 on the 6th

    assert tenant_day(tenant.id, before_local_midnight) == (
        datetime(2026, 12, 5, 3, 0, tzinfo=UTC),
        datetime(2026, 12, 6, 3, 0, tzinfo=UTC),
    )
    assert daily_cap_hold(campaign, session.id, before_local_midnight) == after_local_midnight
    assert daily_cap_hold(campaign, session.id, after_local_midnight) is None
    # a UTC day would have let these two sends count for the 6th and held the morning of the 6th too
    assert daily_cap_hold(campaign, session.id, datetime(2026, 12, 6, 11, 0, tzinfo=UTC)) is None


@pytest.mark.smoke
def test_daily_cap_east_of_utc_starts_the_day_before_utc_midnight(tenant, sim):
    # Tokyo is UTC+9: its 6 December starts at 15:00 UTC on the 5th
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="Asia/Tokyo")
    session = working_session(tenant, sim, "Tokyo")
    campaign = _capped_campaign(tenant, session, cap=1)
    _sent_at(campaign, datetime(2026, 12, 5, 14, 59, tzinfo=UTC))  # 23:59 on the 5th in Tokyo

    assert daily_cap_hold(campaign, session.id, datetime(2026, 12, 5, 14, 59, 30, tzinfo=UTC)) == datetime(
        2026, 12, 5, 15, 0, tzinfo=UTC
    )
    assert daily_cap_hold(campaign, session.id, datetime(2026, 12, 5, 15, 0, tzinfo=UTC)) is None


@pytest.mark.smoke
def test_daily_cap_day_is_23_hours_when_the_clocks_go_forward(tenant):
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="Europe/Berlin")

    start, end = tenant_day(tenant.id, datetime(2026, 3, 29, 12, 0, tzinfo=UTC))

    assert (start, end) == (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), datetime(2026, 3, 29, 22, 0, tzinfo=UTC))


def test_the_campaign_gate_holds_a_capped_session_until_the_tenants_midnight(tenant, sim):
    outreach.update_outreach_settings(tenant, TEST_ACTOR, time_zone="Pacific/Auckland")
    session = working_session(tenant, sim, "Gate")
    campaign = _capped_campaign(tenant, session, cap=1)
    campaign.state = "running"
    now = datetime.now(UTC)
    _sent_at(campaign, now)
    recipient = db.session.scalars(
        select(CampaignRecipient).where(
            CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.sent_at.is_(None)
        )
    ).first()

    class Item:
        origin, origin_id, session_id = "campaign", recipient.id, session.id

    verdict = campaign_gate(Item(), None)

    assert isinstance(verdict, Hold)
    assert verdict.until == tenant_day(tenant.id, now)[1]
    assert verdict.until.astimezone(outreach.outreach_settings(tenant.id).zone).time().hour == 0
