"""Tenants, users, memberships and invitations."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from portal.models.base import Base, EncryptedText, TenantScoped, TimestampMixin, UTCDateTime
from portal.models.quotas import LimitsMixin

if TYPE_CHECKING:
    from portal.services.browser_sessions import SignedIn


class Tenant(LimitsMixin, TimestampMixin, Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # the plan (portal.models.quotas); the columns of LimitsMixin are this tenant's overrides of its limits
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    # messages per minute per WhatsApp session; WhatsApp bans numbers that send in bursts
    send_rate_per_minute: Mapped[int] = mapped_column(Integer, default=30)
    retention_messages_days: Mapped[int] = mapped_column(Integer, default=90)
    retention_events_days: Mapped[int] = mapped_column(Integer, default=14)
    # stored media files go after this many days (the message rows stay); None: the platform default
    retention_media_days: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Opening a chat in the portal marks it read on WhatsApp too (the customer sees blue ticks).
    read_receipts: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa.true())
    # Every member must sign in with a second factor (those without one are led to enrolment).
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa.false())
    # The owner asked for the tenant's deletion: it is inactive from then on and deleted with everything it holds
    # at deletion_scheduled_for, unless the owner or a platform admin cancels first (services.privacy).
    deletion_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deletion_scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deletion_requested_by: Mapped[str | None] = mapped_column(String(254))

    memberships: Mapped[list[Membership]] = relationship(back_populates="tenant", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"<Tenant {self.slug}>"


class User(UserMixin, TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active_user: Mapped[bool] = mapped_column("is_active", Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    last_login_at: Mapped[datetime | None]
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    # When the owner of the address proved it (a mailed link was used, or the identity provider vouched for
    # it); None while the only password may have been set by someone else (an operator, an inviter).
    email_verified_at: Mapped[datetime | None]
    # Two-factor sign-in (services/two_factor): the TOTP secret, encrypted, on from `totp_enabled_at`; the last
    # time step a code was accepted for (a code is good once); the random WebAuthn user handle of its passkeys.
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText())
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    webauthn_handle: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The portal's language for this user (portal.i18n.LANGUAGES); None: the browser's Accept-Language.
    language: Mapped[str | None] = mapped_column(String(10))
    # An IANA time zone for dates on pages; None: the tenant's time zone, else UTC.
    timezone: Mapped[str | None] = mapped_column(String(64))

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash or "", password)

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.is_active_user

    @property
    def credential_fingerprint(self) -> str:
        """Changes whenever the password does; part of the sign-in cookie, so a new password signs out
        every other browser and remember-me cookie."""
        return hashlib.sha256((self.password_hash or "").encode()).hexdigest()[:16]

    # The secret of the browser session this request signed in with (services/browser_sessions.py); set at
    # sign-in and by the user loader, never stored on the row (plain attributes: not Mapped, so not columns).
    # The user loader also keeps what its one query found (services.browser_sessions.SignedIn): the membership of
    # the tenant the browser works in and the number of the user's tenants, so the request reads them once.
    if TYPE_CHECKING:
        browser_token: str | None
        browser_session_id: int | None
        signed_in: SignedIn | None
    else:
        browser_token = None
        browser_session_id = None
        signed_in = None

    @property
    def tenant_count(self) -> int:
        """How many tenants the user belongs to (the header shows a switcher from two on)."""
        found = self.signed_in
        return found.memberships if found is not None and found.user is self else len(self.memberships)

    def get_id(self) -> str:  # Flask-Login: what the session and remember-me cookies carry
        return f"{self.id}:{self.credential_fingerprint}:{self.browser_token or ''}"

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class Membership(TimestampMixin, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "tenant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))

    user: Mapped[User] = relationship(back_populates="memberships")
    tenant: Mapped[Tenant] = relationship(back_populates="memberships")


class Invitation(TenantScoped, TimestampMixin, Base):
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
