"""The translated portal: Flask-Babel with English, Portuguese (Brazil) and Spanish.

Templates call `_()` / `ngettext()`; Python code imports `gettext as _` / `lazy_gettext` from flask_babel.
The locale is the signed-in user's chosen language, else a signed-out visitor's ?lang= choice (kept in a cookie),
else the best match of the browser's Accept-Language. The time zone is the user's, else the tenant's (outreach
settings), else UTC. Dates and numbers on pages go through the filters below (`datetime`, `time`, `day`,
`number`), formatted for the locale in that time zone; `<time datetime=...>` attributes stay ISO UTC.
The catalogues live in `portal/translations/` (messages.pot and the .po files are committed; the .mo files are
compiled by scripts/setup and the image build with `pybabel compile`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import flask_babel
from babel.dates import parse_pattern
from flask import Flask, Response, g, request
from flask.globals import _cv_app
from flask_babel import Babel, format_date, format_decimal, format_time, get_locale, get_timezone
from flask_babel.speaklater import LazyString

LANGUAGES: dict[str, str] = {"en": "English", "pt_BR": "Português (Brasil)", "es": "Español"}
DEFAULT_LOCALE = "en"

babel = Babel()


def _user() -> object | None:
    from flask_login import current_user

    try:
        return current_user if current_user.is_authenticated else None
    except Exception:  # outside a request with a login manager (CLI, jobs): no user
        return None


def N_(message: str) -> str:
    """Marks a message for the catalogue where it is defined (events and the API keep the English); whoever shows
    it to a person translates it with gettext(message)."""
    return message


class Message(str):
    """English text made from a marked template (N_f), that keeps the template and values for translated()."""

    template: str
    values: dict[str, Any]


def N_f(template: str, **values: Any) -> Message:
    """N_ for a message with values: the English text (for the API and logs) that pages can still translate."""
    message = Message(template % values)
    message.template, message.values = template, values
    return message


def translated(message: str | None) -> str:
    """A service's message (marked with N_ or N_f where it is raised) in the reader's language; other text as is."""
    if isinstance(message, Message):  # a marked value (N_f(label)) is translated too
        values = {k: translated(v) if isinstance(v, Message) else v for k, v in message.values.items()}
        return str(gettext(message.template, **values))
    return gettext(message) if message else (message or "")


LANG_COOKIE = "portal_lang"  # a signed-out visitor's choice (?lang= on the sign-in page)


def select_locale() -> str:
    user = _user()
    chosen = getattr(user, "language", None)
    if chosen in LANGUAGES:
        return str(chosen)
    if not request:
        return DEFAULT_LOCALE
    asked = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    if asked in LANGUAGES:
        return str(asked)
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LOCALE) or DEFAULT_LOCALE


def select_timezone() -> str:
    """The user's time zone, else their tenant's (its outreach settings), else UTC."""
    user = _user()
    own = getattr(user, "timezone", None)
    if own:
        return str(own)
    if user is None or not request:
        return "UTC"
    if "i18n_tenant_zone" not in g:
        from portal.services.outreach.settings import DEFAULT_TIME_ZONE, outreach_settings
        from portal.tenancy import current_principal

        principal = current_principal()
        found = getattr(user, "signed_in", None)
        if principal is None:
            zone = "UTC"
        elif found is not None and found.tenant is principal.tenant:
            zone = found.tenant_time_zone or DEFAULT_TIME_ZONE  # read by the sign-in check's query
        else:
            zone = outreach_settings(principal.tenant.id).time_zone
        g.i18n_tenant_zone = zone
    return str(g.i18n_tenant_zone)


def remember_language(response: Response) -> Response:
    """Keep a ?lang= choice in a cookie for the next pages (the sign-in page's language switcher)."""
    asked = request.args.get("lang")
    if asked in LANGUAGES and request.cookies.get(LANG_COOKIE) != asked:
        response.set_cookie(LANG_COOKIE, asked, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


def _moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def _babel_state() -> Any:
    """Flask-Babel's state of this request (the chosen locale, time zone and domain), or None before its first
    use. Read straight from the app context: Flask-Babel's own accessors look it up through `g` several times on
    every call, and a list page translates and formats a hundred values."""
    ctx = _cv_app.get(None)
    return ctx.g.__dict__.get("_flask_babel") if ctx is not None else None


def request_translations() -> Any:
    """The reader's catalogue (what Flask-Babel's get_translations() answers), found with one lookup once the
    request's locale is chosen; force_locale() and refresh() are followed, as they change that state."""
    state = _babel_state()
    key = (getattr(state, "babel_locale", None), getattr(state, "babel_domain", None))
    if key[0] is None or key[1] is None:
        return flask_babel.get_translations()  # the request's first call chooses the locale and the domain
    cache = _cv_app.get().app.extensions["portal_translations"]
    found = cache.get(key)
    if found is None:
        found = cache[key] = flask_babel.get_translations()
    return found


def gettext(string: str, **variables: Any) -> str:
    """Flask-Babel's gettext(), through the request's catalogue found once (request_translations)."""
    text = request_translations().ugettext(string)
    return text if not variables else text % variables


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """Flask-Babel's ngettext(), through the request's catalogue found once (request_translations)."""
    variables.setdefault("num", num)
    text = request_translations().ungettext(singular, plural, num)
    return text if not variables else text % variables


def lazy_gettext(string: str, **variables: Any) -> LazyString:
    """Flask-Babel's lazy_gettext(): translated when shown (form labels are made before any request)."""
    return LazyString(gettext, string, **variables)


def _reader() -> tuple[Any, Any]:
    """(locale, time zone) of the reader, as Flask-Babel's get_locale() and get_timezone() answer them."""
    state = _babel_state()
    locale, zone = getattr(state, "babel_locale", None), getattr(state, "babel_tzinfo", None)
    return (locale or get_locale(), zone or get_timezone())


def _patterns(seconds: bool) -> tuple[Any, Any, Any, Any]:
    """(locale, time zone, the medium date pattern, the time pattern) of the reader, parsed once per request and
    locale: a list page formats a moment per row, and Flask-Babel's format_date/format_time would convert and
    parse the pattern again for each (a fifth of the message log's CPU)."""
    locale, zone = _reader()  # each chosen once per request (or force_locale) by Flask-Babel
    cache = g.setdefault("_moment_patterns", {})
    key = (locale, zone, seconds)
    found = cache.get(key)
    if found is None:
        found = cache[key] = (
            locale,
            zone,
            parse_pattern(locale.date_formats["medium"]),
            parse_pattern(locale.time_formats["medium" if seconds else "short"]),
        )
    return found


def _local(moment: datetime, zone: Any) -> datetime:
    # as Flask-Babel's to_user_timezone: a naive moment is UTC
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(zone)


def datetime_filter(value: Any, seconds: bool = False) -> str:
    """A moment in the reader's language and time zone: "5 Dec 2026, 14:03" / "5 de dez. de 2026 14:03"."""
    moment = _moment(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        return f"{format_date(moment, 'medium')} {time_filter(moment, seconds)}"
    locale, zone, date_pattern, time_pattern = _patterns(seconds)
    local = _local(moment, zone)
    return f"{date_pattern.apply(local, locale)} {time_pattern.apply(local, locale)}"


def time_filter(value: Any, seconds: bool = False) -> str:
    moment = _moment(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        return str(format_time(moment, "medium" if seconds else "short"))
    locale, zone, _, time_pattern = _patterns(seconds)
    return str(time_pattern.apply(_local(moment, zone), locale))


def day_filter(value: Any) -> str:
    """The day of a moment, in full ("Saturday, December 5, 2026")."""
    moment = _moment(value)
    if moment is None:
        return ""
    return str(format_date(moment, "full"))  # a datetime is moved to the reader's zone first


def in_zone(value: datetime, zone: Any) -> str:
    """A moment in a given zone (the tenant's, for scheduled messages), for the reader's language, with the zone's
    abbreviation: "May 1, 2026 9:00 AM CEST" / "1 de mai. de 2026 09:00 CEST"."""
    local = value.astimezone(zone)
    return f"{format_date(local, 'medium', rebase=False)} {format_time(local, 'short', rebase=False)} {local:%Z}"


def number_filter(value: Any) -> str:
    return "" if value is None else str(format_decimal(value))


def init_app(app: Flask) -> None:
    from portal import ROOT

    app.jinja_env.filters.update(datetime=datetime_filter, time=time_filter, day=day_filter, number=number_filter)

    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(ROOT / "portal" / "translations"))
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    # Templates translate through the request's catalogue found once (Flask-Babel installs the same callables
    # around its get_translations(), which finds the request's state four times per string).
    app.extensions["portal_translations"] = {}
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the i18n extension
        gettext=lambda s: request_translations().ugettext(s),
        ngettext=lambda s, p, n: request_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: request_translations().unpgettext(c, s, p, n),
    )
    app.after_request(remember_language)
    app.context_processor(_language_context)


def _language_context() -> dict[str, Any]:
    from flask_babel import get_locale

    language = str(get_locale() or DEFAULT_LOCALE)
    return {"languages": LANGUAGES, "current_language": language, "script_words": script_words}


def script_words() -> dict[str, str]:
    """The words static/js shows, in the page's language (read by portalWord() from <meta name="portal-words">)."""
    _ = gettext

    return {
        "copied": _("Copied"),
        "charsLeft": _("%(count)s characters left"),
        "charsOver": _("%(count)s characters too many"),
        "expired": _("The page has expired. Reload it and try again."),
        "failed": _("Something went wrong (%(status)s). Try again."),
        "threadStart": _("Start of the conversation"),
        "unreachable": _("The portal could not be reached. Your message is kept: try again."),
    }
