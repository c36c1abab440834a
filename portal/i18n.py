"""The translated portal: Flask-Babel with English, Portuguese (Brazil) and Spanish.

Templates call `_()` / `ngettext()`; Python code imports `gettext as _` / `lazy_gettext` from flask_babel.
The locale is the signed-in user's chosen language, else the best match of the browser's Accept-Language;
the time zone is the user's, else UTC. The catalogues live in `portal/translations/` and are compiled by
scripts/setup and the image build (`pybabel compile`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, request
from flask_babel import Babel, format_date, format_decimal, format_time

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


def _moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value  # type: ignore[no-any-return]


def datetime_filter(value: Any, seconds: bool = False) -> str:
    """A moment in the reader's language and time zone: "5 Dec 2026, 14:03" / "5 de dez. de 2026 14:03"."""
    moment = _moment(value)
    if moment is None:
        return ""
    return f"{format_date(moment, 'medium')} {time_filter(moment, seconds)}"


def time_filter(value: Any, seconds: bool = False) -> str:
    moment = _moment(value)
    if moment is None:
        return ""
    return str(format_time(moment, "medium" if seconds else "short"))


def day_filter(value: Any) -> str:
    """The day of a moment, in full ("Saturday, December 5, 2026")."""
    moment = _moment(value)
    if moment is None:
        return ""
    return str(format_date(moment, "full"))  # a datetime is moved to the reader's zone first


def number_filter(value: Any) -> str:
    return "" if value is None else str(format_decimal(value))


def init_app(app: Flask) -> None:
    from portal import ROOT

    app.jinja_env.filters.update(datetime=datetime_filter, time=time_filter, day=day_filter, number=number_filter)

    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(ROOT / "portal" / "translations"))
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
