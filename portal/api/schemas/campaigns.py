"""Campaign DTOs of the /waha API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import DATE_TIME_PATTERN, MAX_TEXT, NOT_BLANK, Request, Response, string_rule
from portal.api.schemas.messages import MediaDto
from portal.api.schemas.scheduled import SendTime
from portal.models.campaigns import CAMPAIGN_STATES

_HHMM = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"
CSV_MAX_CHARS = 20 * 1024 * 1024


class CreateCampaignDto(Request):
    """A campaign: sessions, audience (csv text or a contact tag), template, optional attachment and schedule."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["csv"]}, {"required": ["tag"]}]},
    )

    name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK, examples=["Spring sale"])
    sessionIds: list[str] = Field(
        min_length=1,
        max_length=10,
        description="The sessions to send through, in turn (round robin). A campaign starts once one is WORKING.",
    )
    template: str = Field(
        min_length=1,
        max_length=MAX_TEXT,
        pattern=NOT_BLANK,
        description="The message; {{column}} is filled from the recipient's row (csv: its columns and phone; a "
        "tag: name and phone). A variable the audience lacks is refused (400 unknown_variable).",
        examples=["Hi {{name}}, our sale starts today."],
    )
    # absent or given, never null (so the document shows no null and oneOf holds)
    csv: str = Field(  # type: ignore[assignment]
        None,
        max_length=CSV_MAX_CHARS,
        description="The audience as CSV text: a header line with a `phone` column and any variable columns; at "
        "most 200,000 rows. Rows are validated one by one; refused rows are reported with line and reason.",
        examples=["phone,name\n+49 170 1234567,Ana\n"],
    )
    tag: str = Field(  # type: ignore[assignment]
        None,
        min_length=1,
        max_length=40,
        pattern=NOT_BLANK,
        description="The audience as the tenant's contacts with this tag.",
    )
    media: MediaDto | None = Field(
        None,
        description="A file sent with each message (the text is its caption); inline data at most 1 MB, "
        "larger files by url.",
    )
    startAt: SendTime = Field(
        None,
        description="When to start (RFC 3339, with an offset); now if absent.",
        json_schema_extra=string_rule(pattern=DATE_TIME_PATTERN),
    )
    quietStart: str | None = Field(
        None,
        pattern=_HHMM,
        description="Quiet hours start, HH:MM, tenant clock (no sends).",
    )
    quietEnd: str | None = Field(None, pattern=_HHMM, description="Quiet hours end, HH:MM, tenant clock.")
    dailyCap: int | None = Field(None, ge=1, le=100_000, description="At most this many sends per session per day.")

    @model_validator(mode="after")
    def _one_audience(self) -> CreateCampaignDto:
        if (self.csv is None) == (self.tag is None):
            raise PydanticCustomError("audience", "Give the audience as csv or as tag, not both.", {"field": "csv"})
        return self

    def start_at(self) -> datetime | None:
        return self.startAt


class CampaignCounts(Response):
    queued: int
    sent: int
    delivered: int
    read: int
    replied: int
    failed: int
    skipped: int
    optedOut: int


class CampaignResponse(Response):
    id: int
    name: str
    state: Literal[CAMPAIGN_STATES]  # type: ignore[valid-type]
    sessionIds: list[str]
    template: str
    variables: list[str]
    audience: Literal["csv", "tag"]
    tag: str | None
    startAt: datetime | None
    quietStart: str | None
    quietEnd: str | None
    dailyCap: int | None
    totalRows: int = Field(description="Audience rows read.")
    accepted: int
    rejected: int = Field(description="Rows refused at import (see the recipients export).")
    progress: int = Field(description="Rows read so far while importing.")
    error: str | None
    counts: CampaignCounts
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None

    @classmethod
    def of(cls, campaign: Any, counts: dict[str, int]) -> CampaignResponse:
        def hhmm(minutes: int | None) -> str | None:
            return None if minutes is None else f"{minutes // 60:02d}:{minutes % 60:02d}"

        audience = campaign.audience or {}
        return cls(
            id=campaign.id,
            name=campaign.name,
            state=campaign.state,
            sessionIds=list(campaign.session_ids or []),
            template=campaign.template,
            variables=list(campaign.variables or []),
            audience=audience.get("kind", "csv"),
            tag=audience.get("tag"),
            startAt=campaign.start_at,
            quietStart=hhmm(campaign.quiet_start),
            quietEnd=hhmm(campaign.quiet_end),
            dailyCap=campaign.daily_cap,
            totalRows=campaign.total_rows,
            accepted=campaign.accepted,
            rejected=campaign.rejected,
            progress=campaign.progress,
            error=campaign.error,
            counts=CampaignCounts(**{("optedOut" if k == "opted_out" else k): v for k, v in counts.items()}),
            createdAt=campaign.created_at,
            startedAt=campaign.started_at,
            finishedAt=campaign.finished_at,
        )


class CampaignList(Response):
    data: list[CampaignResponse]
