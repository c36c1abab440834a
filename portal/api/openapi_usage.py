"""The plan usage's part of the /waha route table: its DTOs, the route and the quota error code."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from portal.api.route_table import AUTH, ApiRoute, ErrorCode
from portal.api.schemas.common import Response


class QuotaUsageItem(Response):
    quota: str = Field(
        description="sessions, messages_per_day, messages_per_month, campaign_recipients_per_month, "
        "media_storage, api_requests_per_minute, team_seats or webhook_endpoints"
    )
    used: int
    limit: int | None = Field(description="null: no limit")
    resetsAt: str | None = Field(description="when a periodic count starts again (UTC); null for standing amounts")


class UsageDay(Response):
    day: str
    messages: int
    campaignRecipients: int


class UsageSession(Response):
    id: str
    name: str
    messages: int = Field(description="messages sent this month through the session")


class UsageResponse(Response):
    plan: str | None
    month: str = Field(description="YYYY-MM (UTC)")
    quotas: list[QuotaUsageItem]
    days: list[UsageDay]
    sessions: list[UsageSession]

    @classmethod
    def of(cls, data: dict[str, Any]) -> UsageResponse:
        return cls.model_validate(data)


USAGE_ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(
        409,
        "quota_exceeded",
        "Your plan's limit is reached; details.quota names it, details.limit and details.used give the numbers, "
        "details.resetsAt when a periodic count starts again (null for standing amounts).",
    ),
)

USAGE_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/waha/usage",
        "api.usage",
        "Plan usage",
        "Service",
        "sessions:read",
        response=UsageResponse,
        errors=AUTH,
        description="This month's usage of your tenant against each limit of its plan, per day and per session. "
        "Periodic counts are UTC days and months.",
    ),
)

USAGE_MODELS = (UsageResponse, QuotaUsageItem, UsageDay, UsageSession)
