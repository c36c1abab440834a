"""The portal in the reader's language and time zone: the user's chosen language, else a ?lang= choice on the
sign-in page, else the browser's Accept-Language; dates in the user's zone, else the tenant's, else UTC."""

from __future__ import annotations

import html
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_time
from sqlalchemy import select

from portal.extensions import db
from portal.mail import outbox
from portal.models import AuditEvent, BrowserSession, OutreachSettings
from portal.services import accounts, optouts
from tests.builders import TEST_ACTOR, make_token
from tests.helpers import post, text


def _page(client, path: str = "/account") -> str:
    return html.unescape(text(client.get(path)))


def _set(user, **values) -> None:
    for name, value in values.items():
        setattr(user, name, value)
    db.session.commit()


@pytest.mark.parametrize(
    ("language", "nav", "heading", "flash", "form_error"),
    [
        ("pt_BR", "Painel", "Sua conta", "Seu idioma e fuso horário foram salvos.", "Informe sua senha atual."),
        ("es", "Panel", "Tu cuenta", "Tu idioma y tu zona horaria están guardados.", "Indica tu contraseña actual."),
    ],
)
def test_a_user_who_chose_a_language_reads_the_portal_in_it(
    owner, owner_client, language, nav, heading, flash, form_error
):
    _set(owner, language=language)
    page = _page(owner_client)
    assert f'<html lang="{language.replace("_", "-")}">' in page
    assert f">{nav}</a>" in page and f"<h1>{heading}</h1>" in page
    assert ">Dashboard</a>" not in page
    # a flash, after saving the (same) choice again
    saved = post(owner_client, "/account/preferences", {"language": language, "timezone": ""}, page="/account")
    assert saved.status_code == 303
    assert flash in _page(owner_client)
    # a form error from a validator
    refused = post(owner_client, "/account/password", {"current_password": ""}, page="/account")
    assert refused.status_code == 400
    assert form_error in html.unescape(text(refused))


def test_without_a_choice_the_browser_language_decides(client):
    assert "Forgot your password?" in html.unescape(text(client.get("/login")))
    portuguese = html.unescape(text(client.get("/login", headers={"Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5"})))
    assert "Esqueceu sua senha?" in portuguese and '<html lang="pt-BR">' in portuguese
    spanish = html.unescape(text(client.get("/login", headers={"Accept-Language": "es-MX,es;q=0.8"})))
    assert "¿Olvidaste tu contraseña?" in spanish
    assert "Forgot your password?" in text(client.get("/login", headers={"Accept-Language": "de-DE,fr;q=0.8"}))


def test_the_sign_in_page_offers_the_languages_and_keeps_the_choice(client):
    page = html.unescape(text(client.get("/login")))
    assert 'href="/login?lang=es"' in page and "Português (Brasil)" in page
    chosen = client.get("/login?lang=es")
    assert "¿Olvidaste tu contraseña?" in html.unescape(text(chosen))
    assert any(c.startswith("portal_lang=es;") for c in chosen.headers.getlist("Set-Cookie"))
    assert "¿Olvidaste tu contraseña?" in html.unescape(text(client.get("/account/forgot")))
    assert "Forgot your password?" in text(client.get("/login?lang=en"))


def test_the_users_choice_wins_over_the_browser(owner, owner_client):
    _set(owner, language="es")
    page = html.unescape(text(owner_client.get("/account", headers={"Accept-Language": "pt-BR"})))
    assert "<h1>Tu cuenta</h1>" in page


def test_labels_kept_beside_the_code_are_shown_in_the_readers_language(owner, owner_client):
    # permission and event labels live in Python tables (the API shows their names); pages show their words
    _set(owner, language="pt_BR")
    make_token(owner.memberships[0].tenant)
    optouts.add(owner.memberships[0].tenant, TEST_ACTOR, "+49 170 9999999")
    tokens = html.unescape(text(owner_client.get("/admin/tokens/")))
    listed = html.unescape(text(owner_client.get("/opt-outs/")))
    assert ">Ativo<" in tokens and "Adicionado à mão" in listed
    endpoint = html.unescape(text(owner_client.get("/admin/webhooks/new")))
    assert "sessions:read: Ver as sessões e o status delas" in tokens
    assert "See sessions and their status" not in tokens
    assert "Mensagens recebidas" in endpoint and "Todos os eventos" in endpoint
    assert "Incoming messages" not in endpoint


def _signed_in_at(owner) -> object:
    row = db.session.scalar(select(BrowserSession).where(BrowserSession.user_id == owner.id))
    return row.created_at.astimezone(UTC)


def test_times_are_shown_in_the_users_time_zone(owner, owner_client):
    created = _signed_in_at(owner)
    utc_page = _page(owner_client)
    assert format_time(created, "short", tzinfo=ZoneInfo("UTC"), locale="en") in utc_page
    _set(owner, timezone="Asia/Tokyo")
    tokyo = _page(owner_client)
    assert format_time(created, "short", tzinfo=ZoneInfo("Asia/Tokyo"), locale="en") in tokyo
    assert f'datetime="{created.replace(tzinfo=None).isoformat()}' in tokyo or created.isoformat()[:16] in tokyo


def test_without_a_zone_of_their_own_the_tenants_zone_is_used(owner, owner_client, tenant):
    db.session.add(OutreachSettings(tenant_id=tenant.id, time_zone="America/Sao_Paulo"))
    db.session.commit()
    created = _signed_in_at(owner)
    page = _page(owner_client)
    assert format_time(created, "short", tzinfo=ZoneInfo("America/Sao_Paulo"), locale="en") in page


def test_dates_follow_the_language(owner, owner_client):
    _set(owner, language="pt_BR", timezone="America/Sao_Paulo")
    created = _signed_in_at(owner)
    page = _page(owner_client)
    local = created.astimezone(ZoneInfo("America/Sao_Paulo"))
    assert f"{local.day} de " in page and f" de {local.year} {local:%H:%M}" in page


def test_the_account_page_saves_language_and_time_zone_and_audits_it(owner, owner_client):
    response = post(
        owner_client, "/account/preferences", {"language": "pt_BR", "timezone": "Europe/Lisbon"}, page="/account"
    )
    assert response.status_code == 303
    db.session.refresh(owner)
    assert (owner.language, owner.timezone) == ("pt_BR", "Europe/Lisbon")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "account.preferences"))
    assert event is not None and event.details == {"language": "pt_BR", "timezone": "Europe/Lisbon"}
    # back to the browser's language and the team's zone
    post(owner_client, "/account/preferences", {"language": "", "timezone": ""}, page="/account")
    db.session.refresh(owner)
    assert (owner.language, owner.timezone) == (None, None)


@pytest.mark.parametrize(("language", "timezone"), [("de", ""), ("", "Mars/Olympus"), ("", "x" * 300)])
def test_unknown_languages_and_zones_are_refused(owner, owner_client, language, timezone):
    response = post(owner_client, "/account/preferences", {"language": language, "timezone": timezone}, page="/account")
    assert response.status_code == 400
    db.session.refresh(owner)
    assert (owner.language, owner.timezone) == (None, None)


def test_the_service_refuses_an_unknown_zone(owner):
    from portal.services.errors import Invalid
    from portal.services.preferences import update_preferences

    with pytest.raises(Invalid):
        update_preferences(owner, "es", "Nowhere/Land", TEST_ACTOR)


def test_the_reset_mail_is_in_the_users_language(owner, run_jobs):
    _set(owner, language="pt_BR")
    outbox.clear()
    accounts.send_password_reset(owner.id)
    assert outbox[-1].subject == "Redefina sua senha do WAHA Portal"
    assert "Alguém pediu para redefinir a senha" in outbox[-1].body


def test_the_api_stays_english(owner, client):
    response = client.get("/waha/sessions", headers={"Accept-Language": "pt-BR"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert "Entre" not in response.get_json()["error"]["message"]


def test_error_pages_and_service_refusals_follow_the_language(owner, owner_client):
    _set(owner, language="es")
    missing = owner_client.get("/sessions/no-such-session")
    assert missing.status_code == 404
    assert "No lo hemos encontrado" in html.unescape(text(missing))
    # a service's refusal, next to its field: the API would say it in English, the page in Spanish
    wrong = post(
        owner_client,
        "/account/password",
        {"current_password": "not-the-password", "password": "a-long-new-password", "confirm": "a-long-new-password"},
        page="/account",
    )
    assert wrong.status_code == 400
    assert "Esa no es tu contraseña actual." in html.unescape(text(wrong))


def test_a_service_message_with_values_reads_english_in_the_api_and_translated_on_pages(app):
    from portal.i18n import N_f, translated

    with app.test_request_context(headers={"Accept-Language": "es"}):
        message = N_f("Unknown time zone: %(value)s.", value="Mars/Olympus")
        assert message == "Unknown time zone: Mars/Olympus."  # what the API and the logs say
        assert translated(message) == "Zona horaria desconocida: Mars/Olympus."
        assert translated("No such session.") == "No existe esa sesión."
        assert translated("Some text the catalogue does not know.") == "Some text the catalogue does not know."


def test_the_usage_two_factor_and_privacy_pages_read_in_portuguese(owner, owner_client, tenant):
    _set(owner, language="pt_BR")
    usage = _page(owner_client, "/usage/")
    assert "<h1>Uso do plano</h1>" in usage
    assert "Mensagens enviadas por dia" in usage and "Cada limite com o que está em uso" in usage
    two_factor = _page(owner_client, "/account/two-factor")
    assert "<h1>Verificação em duas etapas</h1>" in two_factor
    assert "App autenticador" in two_factor and "Códigos de recuperação" in two_factor
    privacy = _page(owner_client, "/admin/privacy/")
    assert "<h1>Dados e privacidade</h1>" in privacy
    assert "Exportar todos os dados" in privacy and "Excluir este tenant" in privacy
    assert "Plan usage" not in usage and "Two-factor sign-in" not in two_factor and "Data & privacy" not in privacy
    # a service's refusal on the page (the API keeps the English)
    refused = post(owner_client, "/admin/privacy/deletion", {"confirm": "not-the-id"}, page="/admin/privacy/")
    assert refused.status_code == 400
    assert f"Digite o ID do tenant ({tenant.slug}) para confirmar." in html.unescape(text(refused))


def test_a_quota_refusal_translates_its_limit_too(app):
    from portal.i18n import translated
    from portal.services.quotas.limits import exceeded

    with app.test_request_context(headers={"Accept-Language": "pt-BR"}):
        refusal = exceeded("messages_per_day", 10, 10)
        assert refusal.message.startswith("Your plan's limit of 10 (Messages sent per day) is reached")
        assert translated(refusal.message).startswith(
            "O limite de 10 (Mensagens enviadas por dia) do seu plano foi atingido"
        )


def test_the_quota_warning_mail_is_in_each_owners_language(owner, tenant):
    from portal.services import quotas
    from tests.builders import make_user

    _set(owner, language="es")
    make_user(tenant, "owner", email="english-owner@acme.example.com")
    tenant.max_messages_per_day = 10
    db.session.commit()
    for _ in range(8):
        quotas.take_message(tenant, "s1")
    quotas.flush()
    mails = {m.to: m for m in outbox}
    assert "80% de mensajes enviados por día usado" in mails[owner.email].subject
    assert "Consulta el uso:" in mails[owner.email].body
    english = mails["english-owner@acme.example.com"]
    assert "80% of messages sent per day used" in english.subject and "See the usage:" in english.body
