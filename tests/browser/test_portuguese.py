"""The portal in Portuguese for a browser set to Portuguese (Brazil): sign-in, navigation, a form and its
flash, dates in the Brazilian style, and the switch to Spanish on the account page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS
from tests.builders import PASSWORD, working_session

pytestmark = pytest.mark.browser


@pytest.fixture
def pt_page(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(locale="pt-BR", base_url=base_url, timezone_id="America/Sao_Paulo")
    page = context.new_page()
    yield page
    context.close()


def test_a_portuguese_browser_gets_the_portal_in_portuguese(pt_page, owner, tenant, sim):
    working_session(tenant, sim, "Linha de suporte")
    page = pt_page
    page.goto("/login")
    expect(page.get_by_role("heading", name="Entrar")).to_be_visible()
    expect(page.get_by_role("link", name="Esqueceu sua senha?")).to_be_visible()
    page.get_by_label("E-mail").fill(owner.email)
    page.get_by_label("Senha").fill(PASSWORD)
    page.get_by_label("Manter conectado neste dispositivo").check()
    page.get_by_role("button", name="Entrar", exact=True).click()
    page.wait_for_url("**/")

    nav = page.get_by_role("navigation", name="Principal")
    expect(nav.get_by_role("link", name="Painel")).to_be_visible()
    nav.get_by_role("link", name="Sessões").click()
    expect(page.get_by_role("heading", name="Sessões", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Sair")).to_be_visible()
    expect(page.locator("[data-status=WORKING]").first).to_have_text("Funcionando")

    page.goto("/account")
    expect(page.get_by_role("heading", name="Sua conta")).to_be_visible()
    # the signed-in browsers list shows when this browser signed in, Brazilian style ("5 de dez. de 2026 14:03")
    expect(page.locator("#main time").first).to_have_text(re.compile(r"^\d{1,2} de \w+\.? de \d{4} \d{2}:\d{2}$"))
    page.get_by_label("Fuso horário", exact=True).select_option("America/Sao_Paulo")
    page.get_by_role("button", name="Salvar").first.click()
    expect(page.get_by_text("Seu idioma e fuso horário foram salvos.")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "portuguese-account.png"), full_page=True)

    # a form error from a validator, in Portuguese
    page.get_by_role("button", name="Alterar a senha").click()
    expect(page.get_by_text("Informe sua senha atual.")).to_be_visible()

    # the scripts speak Portuguese too: the message counter on the send page
    page.goto("/messages/send")
    page.get_by_label("Mensagem", exact=True).fill("olá")
    expect(page.get_by_text("4.093 caracteres restantes")).to_be_visible()

    # choosing Spanish on the account page wins over the browser's Portuguese
    page.goto("/account")
    page.get_by_label("Idioma", exact=True).select_option("es")
    page.get_by_role("button", name="Salvar").first.click()
    expect(page.get_by_text("Tu idioma y tu zona horaria están guardados.")).to_be_visible()
    expect(page.get_by_role("heading", name="Tu cuenta")).to_be_visible()
