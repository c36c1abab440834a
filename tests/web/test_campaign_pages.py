"""Campaign and opt-out pages: the wizard (refusals shown next to the field, nothing stored), the progress page
with its counts and error report, pause/cancel buttons, another tenant's campaign, and the opt-out list's add,
import, settings and remove (all audited)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Campaign, OptOut, utcnow
from portal.services import campaigns, optouts
from tests.builders import TEST_ACTOR, make_tenant, member, scanning_session, working_session
from tests.helpers import csrf_token, post, text

CSV = b"phone,name\n+49 170 1111111,Ana\nbad,Bo\n+49 170 2222222,Cy\n"


def _wizard(client, session_id, **fields):
    data = {
        "name": "Spring",
        "session_ids": [session_id],
        "audience": "csv",
        "template": "Hi {{name}}",
        "csv_file": (io.BytesIO(CSV), "people.csv"),
        **fields,
    }
    return post(client, "/campaigns/new", data, page="/campaigns/new", content_type="multipart/form-data")


def test_wizard_creates_a_campaign_and_its_page_shows_the_import(owner_client, tenant, run_jobs):
    session = scanning_session(tenant, "Sales")
    response = _wizard(owner_client, session.id)
    assert response.status_code == 303
    run_jobs()
    detail = text(owner_client.get(response.headers["Location"]))
    assert "Spring" in detail and "2 accepted of 3 rows" in detail and "error report" in detail
    assert "WORKING" in detail  # the session is not: the campaign waits and says why
    campaign_id = db.session.scalar(select(Campaign.id))
    report = text(owner_client.get(f"/campaigns/{campaign_id}/errors.csv"))
    assert report.splitlines()[1].startswith("3,bad,invalid_phone")
    assert "Spring" in text(owner_client.get("/campaigns/"))


def test_the_campaign_csvs_keep_the_audience_files_text_from_running_as_a_formula(owner_client, tenant, run_jobs):
    session = scanning_session(tenant, "Sales")
    audience = b'phone,name\n+49 170 1111111,Ana\n=HYPERLINK("http://evil.example"),Bo\n'
    response = _wizard(owner_client, session.id, csv_file=(io.BytesIO(audience), "people.csv"))
    assert response.status_code == 303
    run_jobs()
    campaign_id = db.session.scalar(select(Campaign.id))

    report = text(owner_client.get(f"/campaigns/{campaign_id}/errors.csv")).splitlines()
    recipients = text(owner_client.get(f"/campaigns/{campaign_id}/recipients.csv")).splitlines()

    assert report[0] == "line,phone,reason,detail"
    assert report[1].startswith('3,"\'=HYPERLINK(""http://evil.example"")",invalid_phone')
    assert recipients[1].startswith("2,+491701111111,")  # the portal's own numbers stay as they are
    assert recipients[2].startswith('3,"\'=HYPERLINK(""http://evil.example"")",,rejected,invalid_phone')


def test_wizard_refuses_an_unknown_variable_next_to_the_message(owner_client, tenant):
    session = scanning_session(tenant, "Sales")
    response = _wizard(owner_client, session.id, template="Hi {{name}}, code {{code}}")
    assert response.status_code == 400
    assert "{{code}}" in text(response)
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0


def test_a_refused_wizard_keeps_the_chosen_csv_for_the_next_press(owner_client, tenant, run_jobs):
    session = scanning_session(tenant, "Sales")
    refused = _wizard(owner_client, session.id, template="Hi {{town}}")
    assert refused.status_code == 400
    page = text(refused)
    assert "Kept: people.csv" in page
    kept = re.search(r'name="csv_kept" type="hidden" value="([^"]+)"', page).group(1)
    name = re.search(r'name="csv_kept_name" type="hidden" value="([^"]+)"', page).group(1)

    # the page's next press, as the browser sends it: no file chosen again, the kept one in its hidden fields
    fixed = _wizard(owner_client, session.id, csv_file=(io.BytesIO(b""), ""), csv_kept=kept, csv_kept_name=name)

    assert fixed.status_code == 303, text(fixed)
    run_jobs()
    campaign = db.session.scalar(select(Campaign))
    assert (campaign.total_rows, campaign.accepted) == (3, 2)
    tampered = _wizard(owner_client, session.id, csv_file=(io.BytesIO(b""), ""), csv_kept="not base64!")
    assert tampered.status_code == 400 and "Choose the CSV file with the audience." in text(tampered)


def test_pause_and_cancel_buttons_change_the_campaign(owner_client, tenant, run_jobs):
    session = scanning_session(tenant, "Sales")
    _wizard(owner_client, session.id)
    run_jobs()
    campaign_id = db.session.scalar(select(Campaign.id))
    page = f"/campaigns/{campaign_id}"
    assert post(owner_client, f"{page}/pause", page=page).status_code == 303
    assert "Paused" in text(owner_client.get(page))
    assert post(owner_client, f"{page}/cancel", page=page).status_code == 303
    db.session.expire_all()
    assert db.session.get(Campaign, campaign_id).state == "cancelled"


def test_the_campaign_page_names_its_sessions_and_follows_ticks_for_a_while_after_the_end(owner_client, tenant):
    session = scanning_session(tenant, "Sales")
    campaign = campaigns.create_campaign(
        tenant,
        TEST_ACTOR,
        name="Spring",
        session_ids=[session.id],
        template="Hi",
        csv_content=b"phone\n+491701111111\n",
    )
    page = text(owner_client.get(f"/campaigns/{campaign.id}"))
    assert "Sessions: Sales" in page and session.id not in page

    campaign.state, campaign.finished_at = "completed", utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert owner_client.get(f"/campaigns/{campaign.id}/progress").status_code == 200  # delivered and read still move
    campaign.finished_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    assert owner_client.get(f"/campaigns/{campaign.id}/progress").status_code == 286  # htmx: stop polling


def test_another_tenants_campaign_is_not_found(owner_client, sim):
    other = make_tenant("globex")
    session = scanning_session(other, "Theirs")
    campaign = campaigns.create_campaign(
        other, TEST_ACTOR, name="Theirs", session_ids=[session.id], template="Hi", csv_content=b"phone\n+491701111111\n"
    )
    for path in ("", "/progress", "/recipients.csv", "/errors.csv"):
        assert owner_client.get(f"/campaigns/{campaign.id}{path}").status_code == 404


def test_viewer_cannot_open_the_wizard(viewer_client):
    assert viewer_client.get("/campaigns/new").status_code == 403


def test_opt_out_list_add_import_settings_and_remove(owner_client, tenant):
    assert post(owner_client, "/opt-outs/add", {"phone": "+49 170 1234500"}, page="/opt-outs/").status_code == 303
    imported = post(
        owner_client,
        "/opt-outs/import",
        {"file": (io.BytesIO(b"phone\n+49 170 1234501\nnope\n"), "stop.csv")},
        page="/opt-outs/",
        content_type="multipart/form-data",
    )
    assert imported.status_code == 200 and "Line 3: invalid phone" in text(imported)
    listed = set(db.session.scalars(select(OptOut.chat_id).where(OptOut.tenant_id == tenant.id)))
    assert listed == {"491701234500@c.us", "491701234501@c.us"}
    saved = post(
        owner_client,
        "/opt-outs/settings",
        {"keywords": "STOP\nNo more", "confirm": "y", "confirm_text": "Done."},
        page="/opt-outs/",
    )
    assert saved.status_code == 303
    assert optouts.settings_for(tenant.id).keywords == ("STOP", "No more")
    removed = post(owner_client, "/opt-outs/remove", {"phone": "491701234500@c.us"}, page="/opt-outs/")
    assert removed.status_code == 303
    actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.startswith("opt_out."))))
    assert sorted(actions) == ["opt_out.add", "opt_out.import", "opt_out.remove", "opt_out.settings"]


def test_viewer_sees_the_list_but_cannot_change_it(viewer_client, tenant):
    optouts.add(tenant, TEST_ACTOR, "+49 170 1234500")
    assert "+491701234500" in text(viewer_client.get("/opt-outs/"))
    assert post(viewer_client, "/opt-outs/add", {"phone": "+49 170 1234502"}, page="/opt-outs/").status_code == 403


# ---- the send page and the opt-out list -------------------------------------------------------------------------


def _send(client, data):
    token = csrf_token(client, "/messages/send")
    return client.post(
        "/messages/send",
        data={"csrf_token": token, "media_kind": "", **data},
        headers={"HX-Request": "true", "X-CSRFToken": token},
        content_type="multipart/form-data",
    )


def test_send_page_refuses_an_opted_out_number_unless_an_owner_overrides(owner_client, login, tenant, sim):
    session = working_session(tenant, sim)
    optouts.add(tenant, TEST_ACTOR, "+49 170 9999999")
    data = {"session_id": session.id, "to": "+49 170 9999999", "text": "receipt"}
    refused = _send(owner_client, data)
    assert "opted out" in text(refused) and not refused.headers.get("HX-Redirect")
    assert "ignoreOptOut" not in text(refused)  # the page names its checkbox, not the API's field
    assert "Send even though the number is on the opt-out list" in text(owner_client.get("/messages/send"))

    operator = login(member(tenant, "operator"))
    assert "Send even though" not in text(operator.get("/messages/send"))
    assert not _send(operator, {**data, "ignore_opt_out": "y"}).headers.get("HX-Redirect")

    assert _send(owner_client, {**data, "ignore_opt_out": "y"}).headers.get("HX-Redirect")
    assert [m["body"] for m in sim.sent_messages(session.external_name)] == ["receipt"]
    override = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "opt_out.override"))
    assert override.details["chat_id"] == "491709999999@c.us" and override.actor_label == "owner@acme.example.com"
