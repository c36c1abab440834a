"""The portal's side of plans: the refusal in words where it happened, the usage page, the platform's plans,
overrides and usage table (CSV), all audited; another tenant's usage stays invisible."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Plan, Tenant
from portal.services import quotas
from tests.builders import make_tenant, make_user, working_session
from tests.helpers import post, text
from tests.web.test_messages import send


@pytest.fixture
def root(tenant):
    return make_user(tenant, "owner", email="root@example.com", is_platform_admin=True)


def _limit(tenant, **limits):
    for column, value in limits.items():
        setattr(tenant, column, value)
    db.session.commit()


def test_send_form_over_quota_says_so_and_sends_nothing(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    _limit(tenant, max_messages_per_day=0)
    response = send(owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": "Hi"})
    assert "limit of 0 (Messages sent per day) is reached" in text(response)
    assert sim.sent_messages(session.external_name) == []


def test_invitation_over_the_seats_is_refused_on_the_form(login, owner, tenant):
    _limit(tenant, max_team_seats=1)
    response = post(
        login(owner), "/admin/team/invite", {"email": "new@example.com", "role": "operator"}, page="/admin/team/"
    )
    assert "Team seats" in text(response)
    assert response.status_code == 409


def test_usage_page_shows_each_limit_and_the_days(owner_client, tenant, sim):
    session = working_session(tenant, sim)
    _limit(tenant, max_messages_per_month=50)
    send(owner_client, {"session_id": session.id, "to": "+49 170 9999999", "text": "Hi"})
    page = text(owner_client.get("/usage/"))
    assert 'data-quota="messages_per_month"' in page
    assert "<td>50</td>" in page
    assert "<rect" in page and session.name in page


def test_usage_page_of_a_member_shows_only_their_tenant(login, tenant, sim, owner):
    other = make_tenant("globex", name="Globex")
    stranger = make_user(other, "owner", email="boss@globex.example.com")
    session = working_session(tenant, sim, "Secret line")
    send(login(owner), {"session_id": session.id, "to": "+49 170 9999999", "text": "Hi"})
    page = text(login(stranger).get("/usage/"))
    assert "Secret line" not in page
    assert "No messages sent this month yet." in page


def test_platform_admin_creates_a_plan_and_sets_a_tenants_overrides(login, tenant, root):
    client = login(root)
    created = post(
        client,
        "/platform/plans/new",
        {"name": "Pro", "max_messages_per_day": "1000", "max_sessions": "50"},
        page="/platform/plans",
    )
    assert created.status_code == 303
    plan = db.session.scalar(select(Plan).where(Plan.name == "Pro"))
    assert (plan.max_messages_per_day, plan.max_sessions, plan.max_team_seats) == (1000, 50, None)
    saved = post(
        client,
        f"/platform/tenants/{tenant.id}/plan",
        {"plan_id": str(plan.id), "max_messages_per_day": "10"},
        page=f"/platform/tenants/{tenant.id}",
    )
    assert saved.status_code == 303
    fresh = db.session.get(Tenant, tenant.id)
    db.session.refresh(fresh)
    assert fresh.plan_id == plan.id
    assert quotas.limit_of(fresh, "messages_per_day") == 10
    assert quotas.limit_of(fresh, "sessions") == 50
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"plan.create", "tenant.plan"} <= actions
    assert "In force: 10" in text(client.get(f"/platform/tenants/{tenant.id}"))


def test_plan_form_refuses_a_bad_limit_without_saving(login, root):
    response = post(login(root), "/platform/plans/new", {"name": "Bad", "max_sessions": "many"}, page="/platform/plans")
    assert response.status_code == 400
    assert db.session.scalar(select(Plan).where(Plan.name == "Bad")) is None


def test_platform_usage_table_exports_csv(login, tenant, root):
    _limit(tenant, max_messages_per_day=7)
    quotas.take_message(tenant, "s1")
    client = login(root)
    assert tenant.name in text(client.get("/platform/usage"))
    csv_text = text(client.get("/platform/usage.csv"))
    header, *rows = csv_text.strip().splitlines()
    assert header.startswith("tenant,slug,plan,messages_today")
    assert any(row.startswith(f"{tenant.name},{tenant.slug},Default,1,7,1") for row in rows)


@pytest.mark.parametrize("path", ["/platform/plans", "/platform/usage", "/platform/usage.csv", "/platform/plans/new"])
def test_platform_plan_pages_are_refused_to_tenant_owners(login, owner, path):
    assert login(owner).get(path).status_code == 403


def test_session_form_over_the_plan_says_so(owner_client, tenant):
    from tests.helpers import csrf_token

    _limit(tenant, max_sessions=0)
    token = csrf_token(owner_client, "/sessions/new")
    response = owner_client.post("/sessions/new", data={"csrf_token": token, "name": "Support", "engine": ""})
    assert "(Sessions)" in text(response) and "0 are in use" in text(response)


def test_accepting_an_invitation_over_the_seats_is_refused(tenant, owner):
    from portal.services import team
    from portal.services.errors import ServiceError
    from tests.builders import TEST_ACTOR, mailed_link

    _limit(tenant, max_team_seats=2)
    team.invite_member(
        tenant, "new@example.com", "operator", TEST_ACTOR, actor_role="owner", accept_url=lambda t: f"/invite/{t}"
    )
    with pytest.raises(quotas.QuotaExceeded):  # the owner and the open invitation hold both seats
        team.invite_member(tenant, "third@example.com", "operator", TEST_ACTOR, actor_role="owner", accept_url=str)
    _limit(tenant, max_team_seats=1)  # lowered below what is in use: the invitation cannot be accepted
    token = mailed_link("new@example.com").rsplit("/", 1)[1]
    with pytest.raises(ServiceError) as refused:
        team.accept_invitation(token, TEST_ACTOR, password="a long enough pass phrase 123")
    assert refused.value.code == "quota_exceeded"
    assert len(team.list_members(tenant)) == 1
    _limit(tenant, max_team_seats=2)
    team.accept_invitation(token, TEST_ACTOR, password="a long enough pass phrase 123")
    assert len(team.list_members(tenant)) == 2


@pytest.mark.parametrize(
    "form",
    [
        {"plan_id": "9" * 30},
        {"plan_id": "abc"},
        {"plan_id": "", "max_messages_per_day": "9" * 40},
        {"plan_id": "", "max_sessions": "-3"},
    ],
)
def test_a_tenants_plan_form_with_a_bad_value_changes_nothing(login, tenant, root, form):
    client = login(root)
    before = (tenant.plan_id, tenant.max_messages_per_day, tenant.max_sessions)

    answer = post(client, f"/platform/tenants/{tenant.id}/plan", form, page=f"/platform/tenants/{tenant.id}")

    assert answer.status_code == 303
    shown = text(client.get(f"/platform/tenants/{tenant.id}"))
    assert "No such plan." in shown or "A limit is a whole number from 0, or empty." in shown
    fresh = db.session.get(Tenant, tenant.id)
    db.session.refresh(fresh)
    assert (fresh.plan_id, fresh.max_messages_per_day, fresh.max_sessions) == before
