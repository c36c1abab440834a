"""The translated portal: Flask-Babel with English, Portuguese (Brazil) and Spanish.

Templates call `_()` / `ngettext()`; Python code imports `gettext as _` / `lazy_gettext` from flask_babel.
The locale is the signed-in user's chosen language, else the best match of the browser's Accept-Language;
the time zone is the user's, else UTC. The catalogues live in `portal/translations/` and are compiled by
scripts/setup and the image build (`pybabel compile`).
"""

from __future__ import annotations

from flask import Flask, request
from flask_babel import Babel

LANGUAGES: dict[str, str] = {"en": "English", "pt_BR": "Português (Brasil)", "es": "Español"}
DEFAULT_LOCALE = "en"

babel = Babel()


def _user() -> object | None:
    from flask_login import current_user

    try:
        return current_user if current_user.is_authenticated else None
    except Exception:  # outside a request with a login manager (CLI, jobs): no user
        return None


def select_locale() -> str:
    user = _user()
    chosen = getattr(user, "language", None)
    if chosen in LANGUAGES:
        return str(chosen)
    if not request:
        return DEFAULT_LOCALE
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LOCALE) or DEFAULT_LOCALE


def select_timezone() -> str:
    user = _user()
    return str(getattr(user, "timezone", None) or "UTC")


def init_app(app: Flask) -> None:
    from portal import ROOT

    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(ROOT / "portal" / "translations"))
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
