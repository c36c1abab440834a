"""A user's own display preferences: the portal's language and the time zone of dates on pages."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

from portal.extensions import db
from portal.i18n import LANGUAGES, N_f
from portal.models import User
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Invalid


@lru_cache(maxsize=1)
def time_zones() -> list[str]:
    """The IANA time zones a user may choose, sorted (the legacy aliases such as "US/Eastern" included)."""
    return sorted(zone for zone in available_timezones() if "/" in zone or zone == "UTC")


def update_preferences(user: User, language: str | None, timezone: str | None, actor: Actor) -> User:
    """Set the user's language (None: the browser's) and time zone (None: the tenant's, else UTC)."""
    language = (language or "").strip() or None
    timezone = (timezone or "").strip() or None
    if language is not None and language not in LANGUAGES:
        raise Invalid.field("language", N_f("Unknown language: %(language)s.", language=language[:16]))
    if timezone is not None and timezone not in available_timezones():
        raise Invalid.field("timezone", N_f("Unknown time zone: %(timezone)s.", timezone=timezone[:64]))
    changes = {}
    if language != user.language:
        changes["language"] = language or "browser"
    if timezone != user.timezone:
        changes["timezone"] = timezone or "tenant"
    if not changes:
        return user
    user.language, user.timezone = language, timezone
    audit.record(None, "account.preferences", actor, target_type="user", target_id=user.id, details=changes)
    db.session.commit()
    return user
