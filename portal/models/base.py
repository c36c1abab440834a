"""Declarative base, mixins and the tenant-scoped lookup every tenant-owned query goes through."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import (
    JSON,
    BigInteger,
    CursorResult,
    DateTime,
    Integer,
    MetaData,
    Result,
    Select,
    String,
    Text,
    TypeDecorator,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, registry, scoped_session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Integer primary keys autoincrement on SQLite only when declared INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on every backend (SQLite returns naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class _Cipher:
    """Fernet keyed by the app's ENCRYPTION_KEY (or one derived from SECRET_KEY), set in create_app."""

    fernet: Fernet | None = None

    @classmethod
    def configure(cls, secret: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(("portal-encryption:" + secret).encode()).digest())
        cls.fernet = Fernet(key)


def configure_encryption(secret: str) -> None:
    """Set the key used by EncryptedText columns."""
    _Cipher.configure(secret)


class EncryptedText(TypeDecorator):
    """A secret stored encrypted at rest and decrypted on load."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if _Cipher.fernet is None:
            raise RuntimeError("encryption key is not configured")
        return _Cipher.fernet.encrypt(value.encode()).decode()

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if _Cipher.fernet is None:
            raise RuntimeError("encryption key is not configured")
        try:
            return _Cipher.fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            raise RuntimeError("a stored secret cannot be decrypted: was ENCRYPTION_KEY changed?") from None


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime(), dict[str, Any]: JSONType, list[str]: JSONType},
    )


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)


class TenantScoped:
    """Mixin for tenant-owned rows: lookups always carry the tenant."""

    if TYPE_CHECKING:
        # Each model declares its own columns (ids are numbers or text; audit rows may have no tenant).
        id: Mapped[Any]
        tenant_id: Mapped[int | None]

    @classmethod
    def scoped(cls, tenant_id: int) -> Select[tuple[Self]]:
        """A select() of this model limited to one tenant."""
        return select(cls).where(cls.tenant_id == tenant_id)


ModelT = TypeVar("ModelT", bound=TenantScoped)


def get_for_tenant(
    session: Session | scoped_session[Any], model: type[ModelT], tenant_id: int, row_id: Any
) -> ModelT | None:
    """Fetch a tenant-owned row by id; another tenant's row, or an id that cannot be one, is simply not found."""
    if row_id is None:
        return None
    if isinstance(model.id.type, Integer):
        from portal.converters import parse_id

        row_id = parse_id(row_id, big=isinstance(model.id.type, BigInteger))
        if row_id is None:
            return None
    stmt = select(model).where(model.id == row_id, model.tenant_id == tenant_id)
    return session.scalars(stmt).first()


def rowcount(result: Result[Any]) -> int:
    """How many rows an INSERT, UPDATE or DELETE touched (-1 when the driver cannot tell).

    Session.execute() is typed to return a Result; for these statements it is a CursorResult, which has the count.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} of a statement that returns rows has no row count")
    return result.rowcount


__all__ = [
    "Base",
    "BigId",
    "EncryptedText",
    "JSONType",
    "TenantScoped",
    "TimestampMixin",
    "UTCDateTime",
    "configure_encryption",
    "get_for_tenant",
    "rowcount",
    "utcnow",
    "String",
]
