"""A tenant's outreach settings: time zone, quiet hours and the gap between campaign messages; the times they
give (when quiet hours end, the next campaign slot)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from portal.extensions import db
from portal.i18n import N_, N_f
from portal.models import OutreachSettings, Tenant, utcnow
from portal.models.outreach import DEFAULT_GAP, DEFAULT_TIME_ZONE
from portal.services import audit
from portal.services.audit import Actor
from portal.services.errors import Invalid

GAP_LIMIT = 3600.0  # seconds: a gap longer than an hour is a mistake, not a pacing choice


@dataclass(frozen=True)
class Outreach:
    """The effective settings of a tenant (the defaults when it never saved any)."""

    time_zone: str = DEFAULT_TIME_ZONE
    quiet_start: time | None = None
    quiet_end: time | None = None
    gap_min: float = DEFAULT_GAP[0]
    gap_max: float = DEFAULT_GAP[1]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def quiet_until(self, now: datetime) -> datetime | None:
        """When the quiet hours around `now` end (UTC), or None when `now` is not in quiet hours.

        Quiet hours are [start, end) of the tenant's local wall clock; start > end spans midnight (22:00-07:00).
        Local times are resolved through the zone, so daylight-saving changes move them with the clock.
        """
        start, end = self.quiet_start, self.quiet_end
        if start is None or end is None or start == end:
            return None
        local = now.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        if start < end:
            inside = start <= clock < end
            end_day = local.date()
        else:
            inside = clock >= start or clock < end
            end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
        if not inside:
            return None
        ends = datetime.combine(end_day, end, tzinfo=self.zone)
        return ends.astimezone(UTC)

    def draw_gap(self, rng: random.Random | None = None) -> float:
        """A gap in seconds drawn uniformly from [gap_min, gap_max]."""
        if self.gap_max <= self.gap_min:
            return self.gap_min
        return (rng or random).uniform(self.gap_min, self.gap_max)


def outreach_settings(tenant_id: int) -> Outreach:
    """The tenant's effective settings."""
    row = db.session.get(OutreachSettings, tenant_id)
    if row is None:
        return Outreach()
    return Outreach(row.time_zone, row.quiet_start, row.quiet_end, row.gap_min, row.gap_max)


def tenant_time(tenant_id: int, value: Any, field: str = "send_at") -> datetime | None:
    """A time a person entered on a page (no offset: a datetime, or "YYYY-MM-DDTHH:MM" as a datetime-local input
    sends it) read as the tenant's local time, in UTC; None when empty, Invalid when it cannot be read."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Invalid.field(field, N_("Give a date and time.")) from None
    if not isinstance(value, datetime):
        raise Invalid.field(field, N_("Give a date and time."))
    if value.tzinfo is None:
        value = value.replace(tzinfo=outreach_settings(tenant_id).zone)
    return value.astimezone(UTC)


def _zone(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid.field("time_zone", N_("Choose a time zone (e.g. Europe/Berlin)."))
    value = value.strip()
    if value not in available_timezones():
        raise Invalid.field("time_zone", N_f("Unknown time zone: %(value)s.", value=value[:64]))
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid.field("time_zone", N_f("Unknown time zone: %(value)s.", value=value[:64])) from None
    return value


def _clock(field: str, value: Any) -> time | None:
    if value is None or value == "":
        return None
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    try:
        hours, minutes = str(value).strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise Invalid.field(field, N_("Give a time of day as HH:MM.")) from None


def _seconds(field: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise Invalid.field(field, N_("Give a number of seconds.")) from None
    if not 0 <= seconds <= GAP_LIMIT or seconds != seconds:
        raise Invalid.field(field, f"Give a number of seconds between 0 and {GAP_LIMIT:.0f}.")
    return seconds


def update_outreach_settings(
    tenant: Tenant,
    actor: Actor,
    *,
    time_zone: Any,
    quiet_start: Any = None,
    quiet_end: Any = None,
    gap_min: Any = DEFAULT_GAP[0],
    gap_max: Any = DEFAULT_GAP[1],
) -> Outreach:
    """Save the tenant's settings (Invalid on bad input, nothing written); audited as "outreach.settings"."""
    zone = _zone(time_zone)
    start, end = _clock("quiet_start", quiet_start), _clock("quiet_end", quiet_end)
    if (start is None) != (end is None):
        raise Invalid.field("quiet_end", N_("Give both the start and the end of quiet hours, or neither."))
    low, high = _seconds("gap_min", gap_min), _seconds("gap_max", gap_max)
    if high < low:
        raise Invalid.field("gap_max", N_("The longest gap must not be shorter than the shortest."))
    row = db.session.get(OutreachSettings, tenant.id)
    if row is None:
        row = OutreachSettings(tenant_id=tenant.id)
        db.session.add(row)
    row.time_zone, row.quiet_start, row.quiet_end, row.gap_min, row.gap_max = zone, start, end, low, high
    row.updated_at = utcnow()
    details = {
        "time_zone": zone,
        "quiet_start": start.strftime("%H:%M") if start else None,
        "quiet_end": end.strftime("%H:%M") if end else None,
        "gap_min": low,
        "gap_max": high,
    }
    audit.record(tenant.id, "outreach.settings", actor, target_type="tenant", target_id=tenant.id, details=details)
    db.session.commit()
    return outreach_settings(tenant.id)
