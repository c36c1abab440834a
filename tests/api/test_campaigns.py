"""Campaigns and opt-outs over the API: create with a CSV audience (row-by-row validation, error report in the
export), refusal of unknown template variables, pause/resume/cancel, another tenant's campaign, and the opt-out
rule on one-off sends (409 recipient_opted_out, ignoreOptOut for owners and admins only)."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Campaign, CampaignRecipient
from portal.services import optouts
from tests.builders import TEST_ACTOR, make_token, member
from tests.helpers import Api

CSV = (
    "phone,name,city\n"
    "+49 170 1111111,Ana,Berlin\n"  # line 2
    "not a number,Bo,Rome\n"  # line 3: invalid
    "+49 170 2222222,,Paris\n"  # line 4: {{name}} missing
    "+49 170 1111111,Ana again,Berlin\n"  # line 5: duplicate of line 2
    "+49 170 3333333,Cy,Lisbon\n"  # line 6: opted out
    "+49 170 4444444,Di\n"  # line 7: wrong column count
    "+49 170 5555555,Ed,Madrid\n"  # line 8
)


def _create(api: Api, session_id: str, **fields: Any) -> Any:
    body = {"name": "Spring", "sessionIds": [session_id], "template": "Hi {{name}} in {{city}}", "csv": CSV}
    return api.post("/waha/campaigns", json={**body, **fields})


def test_create_campaign_imports_rows_and_reports_the_others_by_line(api, tenant, session, run_jobs):
    optouts.add(tenant, TEST_ACTOR, "+49 170 3333333")
    response = _create(api, session["id"])
    assert response.status_code == 202, response.get_json()
    created = response.get_json()
    assert created["state"] == "importing" and created["variables"] == ["name", "city"]
    run_jobs()
    campaign = api.get(f"/waha/campaigns/{created['id']}").get_json()
    # the session is not WORKING: the campaign does not start, and says why
    assert campaign["state"] == "scheduled" and "WORKING" in campaign["error"]
    assert (campaign["totalRows"], campaign["accepted"], campaign["rejected"]) == (7, 2, 5)
    assert campaign["counts"]["optedOut"] == 1 and campaign["counts"]["queued"] == 2
    export = api.get(f"/waha/campaigns/{created['id']}/recipients")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    by_line = {int(r["line"]): (r["state"], r["reason"]) for r in rows}
    assert by_line == {
        2: ("pending", ""),
        3: ("rejected", "invalid_phone"),
        4: ("rejected", "missing_variable"),
        5: ("rejected", "duplicate"),
        6: ("opted_out", "opted_out"),
        7: ("rejected", "wrong_column_count"),
        8: ("pending", ""),
    }


def test_template_with_an_unknown_variable_is_refused_before_anything_is_stored(api, session):
    response = _create(api, session["id"], template="Hi {{name}}, your code is {{code}}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "unknown_variable" and error["details"]["unknown"] == ["code"]
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0


def test_csv_without_a_phone_column_is_refused(api, session):
    response = _create(api, session["id"], csv="name\nAna\n")
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["fields"][0]["field"] == "csv"


def test_a_start_time_the_calendar_lacks_or_without_offset_is_refused_on_start_at(api, session):
    for start_at in ("2030-02-30T00:00:00Z", "2030-04-31T10:00:00+02:00", "2030-05-01T10:00:00", "1800-01-01T00:00Z"):
        response = _create(api, session["id"], startAt=start_at)
        assert response.status_code == 400, (start_at, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == "validation_error" and error["details"]["fields"][0]["field"] == "startAt"
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0
    later = _create(api, session["id"], startAt="2030-05-01T10:00:00+02:00")
    assert later.status_code == 202 and later.get_json()["startAt"].startswith("2030-05-01T08:00:00")


def test_a_csv_of_any_line_endings_imports_and_an_unreadable_line_fails_the_import_by_number(api, session, run_jobs):
    # old spreadsheets end lines with a lone \r; the csv module's 128 KB value limit ends a file it cannot read
    cr_only = _create(
        api, session["id"], template="Hi {{name}}", csv="phone,name\r+49 170 1111111,Ana\r+49 170 2222222,Bo\r"
    )
    too_long = _create(
        api, session["id"], template="Hi", csv="phone,name\n+49 170 1111111,Ana\n+49 170 2,{}\n".format("a" * 140_000)
    )
    assert (cr_only.status_code, too_long.status_code) == (202, 202), (cr_only.get_json(), too_long.get_json())

    run_jobs()

    imported = api.get(f"/waha/campaigns/{cr_only.get_json()['id']}").get_json()
    assert (imported["totalRows"], imported["accepted"]) == (2, 2)
    failed = api.get(f"/waha/campaigns/{too_long.get_json()['id']}").get_json()
    assert failed["state"] == "failed" and "Line 3 of the file cannot be read as CSV" in failed["error"]


def test_pause_resume_and_cancel_are_audited_and_follow_the_state(api, tenant, session, run_jobs):
    campaign_id = _create(api, session["id"]).get_json()["id"]
    run_jobs()
    assert api.post(f"/waha/campaigns/{campaign_id}/pause").get_json()["state"] == "paused"
    refused = api.post(f"/waha/campaigns/{campaign_id}/pause")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "campaign_not_ready"
    assert api.post(f"/waha/campaigns/{campaign_id}/resume").get_json()["state"] == "scheduled"
    cancelled = api.post(f"/waha/campaigns/{campaign_id}/cancel").get_json()
    assert cancelled["state"] == "cancelled" and cancelled["counts"]["skipped"] >= 2
    states = set(
        db.session.scalars(select(CampaignRecipient.state).where(CampaignRecipient.campaign_id == campaign_id))
    )
    assert states == {"skipped"}
    actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id)))
    assert {"campaign.create", "campaign.pause", "campaign.resume", "campaign.cancel"} <= actions


def test_another_tenants_campaign_is_not_found(api, other_api, session):
    campaign_id = _create(api, session["id"]).get_json()["id"]
    for path in ("", "/recipients"):
        response = other_api.get(f"/waha/campaigns/{campaign_id}{path}")
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "campaign_not_found"
    assert other_api.post(f"/waha/campaigns/{campaign_id}/cancel").status_code == 404
    assert api.get("/waha/campaigns").get_json()["data"][0]["id"] == campaign_id
    assert other_api.get("/waha/campaigns").get_json()["data"] == []


def test_campaign_on_another_tenants_session_is_refused(other_api, session):
    response = _create(other_api, session["id"])
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "session_not_found"


# ---- opt-outs on one-off sends ----------------------------------------------------------------------------------


def test_send_to_an_opted_out_number_is_refused(api, tenant, working_session, sim):
    optouts.add(tenant, TEST_ACTOR, "+49 170 7777777")
    response = api.post(f"/waha/sessions/{working_session['id']}/send", json={"to": "+49 170 7777777", "text": "hi"})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "recipient_opted_out"
    assert all("7777777" not in str(m) for m in sim.sent_messages(working_session["externalSessionId"]))


def test_owner_may_send_to_an_opted_out_number_with_ignore_opt_out(client, tenant, working_session):
    owner = member(tenant, "owner")
    api = Api(client, make_token(tenant, created_by_id=owner.id))
    optouts.add(tenant, TEST_ACTOR, "+49 170 7777777")
    body = {"to": "+49 170 7777777", "text": "your receipt", "ignoreOptOut": True}
    response = api.post(f"/waha/sessions/{working_session['id']}/send", json=body)
    assert response.status_code == 200, response.get_json()


def test_operator_token_may_not_ignore_the_opt_out_list(client, tenant, working_session):
    operator = member(tenant, "operator")
    api = Api(client, make_token(tenant, created_by_id=operator.id))
    optouts.add(tenant, TEST_ACTOR, "+49 170 7777777")
    body = {"to": "+49 170 7777777", "text": "hi", "ignoreOptOut": True}
    response = api.post(f"/waha/sessions/{working_session['id']}/send", json=body)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "opt_out_override_forbidden"
