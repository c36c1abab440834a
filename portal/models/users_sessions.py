"""Signed-in browsers: one row per sign-in, so a sign-out ends it on the server and not only in the cookie."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, UTCDateTime, utcnow


class BrowserSession(Base):
    """A browser signed in as a user. The session cookie and the remember-me cookie both carry its secret;
    only the secret's sha256 is stored. Revoking the row signs that browser out, whatever cookies it kept."""

    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    method: Mapped[str] = mapped_column(String(16), default="password")  # password / oidc / invitation
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None]
    # How the sign-in passed its second step (totp / recovery / passkey / remembered / enrolled), None without
    # one; and whether the user must enrol a factor before anything else (services/two_factor).
    second_factor: Mapped[str | None] = mapped_column(String(16))
    enrol_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa.false())

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now
