"""Configuration: every environment variable the portal reads, parsed and validated in one place.

`load_settings(environ)` turns the environment into a flat mapping of typed values and a list of
problems, one line each. In production a problem stops the app; the embedded default needs no
variable at all.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent

ENVIRONMENTS = ("development", "production", "testing")


class ConfigError(RuntimeError):
    """Raised at start-up when the configuration cannot run the app; one problem per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def _whole_ms(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f'{name} must be a whole number of milliseconds, got "{raw}"') from None
    if value <= 0:
        raise ValueError(f'{name} must be more than 0 milliseconds, got "{raw}"')
    return value


def _count(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f'{name} must be a whole number, got "{raw}"') from None
    if value < 0:
        raise ValueError(f'{name} must be 0 or more, got "{raw}"')
    return value


def _positive(raw: str, name: str) -> int:
    value = _count(raw, name)
    if value == 0:
        raise ValueError(f'{name} must be at least 1, got "{raw}"')
    return value


def _http_url(raw: str, name: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f'{name} must be an http(s) URL, got "{raw}"')
    return raw.rstrip("/")


def _database_url(raw: str, name: str) -> str:
    scheme = raw.split(":", 1)[0]
    if scheme == "postgres" or scheme == "postgresql":
        # Heroku-style and bare URLs: use the psycopg 3 driver that requirements.txt pins.
        return "postgresql+psycopg:" + raw.split(":", 1)[1]
    if not (scheme.startswith("postgresql") or scheme.startswith("sqlite")):
        raise ValueError(f'{name} must be a postgresql:// or sqlite:// URL, got "{scheme}://..."')
    return raw


def _redis_url(raw: str, name: str) -> str:
    if urlparse(raw).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f'{name} must be a redis:// URL, got "{raw}"')
    return raw


def _boolean(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f'{name} must be true or false, got "{raw}"')


def _text(raw: str, name: str) -> str:
    return raw


def _csv(raw: str, name: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _choice(*options: str) -> Callable[[str, str], str]:
    def parse(raw: str, name: str) -> str:
        if raw not in options:
            raise ValueError(f'{name} must be one of {", ".join(options)}, got "{raw}"')
        return raw

    return parse


def _secret(min_length: int) -> Callable[[str, str], str]:
    def parse(raw: str, name: str) -> str:
        if len(raw) < min_length:
            raise ValueError(f"{name} must be at least {min_length} characters long")
        return raw

    return parse


def _trusted_proxies(raw: str, name: str) -> int | tuple[str, ...]:
    from portal.proxy import parse_trusted_proxies

    return parse_trusted_proxies(raw, name)


def _media_storage(raw: str, name: str) -> str:
    from portal.storage import parse_location

    try:
        parse_location(raw)
    except ValueError as exc:
        raise ValueError(f"{name} {exc}") from None
    return raw.strip()


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str, str], Any]
    default: Any
    help: str
    required_in_production: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("PORTAL_ENV", _choice(*ENVIRONMENTS), "development", "development, production or testing"),
    Setting("SECRET_KEY", _secret(32), None, "signs cookies and links; derives the encryption key", True),
    Setting("ENCRYPTION_KEY", _secret(32), None, "encrypts secrets at rest (defaults to one derived from SECRET_KEY)"),
    Setting(
        "DATABASE_URL", _database_url, None, "PostgreSQL in production; SQLite file under instance/ by default", True
    ),
    Setting(
        "DATABASE_IDLE_TRANSACTION_TIMEOUT",
        _whole_ms,
        60000,
        "ms a transaction may sit idle before PostgreSQL ends its connection: frees the locks of a host lost "
        "mid-transaction",
    ),
    Setting("REDIS_URL", _redis_url, None, "Redis for RQ, cache, rate limits; unset = jobs run in-process", True),
    Setting("REDIS_TIMEOUT", _whole_ms, 500, "ms, connect and read timeout of Redis commands (then fail fast)"),
    Setting("PUBLIC_BASE_URL", _http_url, "http://127.0.0.1:5000", "URL at which WAHA reaches this portal", True),
    Setting("WAHA_BASE_URL", _http_url, "http://127.0.0.1:3000", "first WAHA server (seeded into waha_servers)"),
    Setting("WAHA_API_KEY", _text, "wahasim-dev-key", "API key of that WAHA server", True),
    Setting("WAHA_TIMEOUT", _whole_ms, 10000, "ms, bound on every WAHA call"),
    Setting("WAHA_RETRY_ATTEMPTS", _count, 3, "retries of safe WAHA calls"),
    Setting("WAHA_POOL_MAX", _positive, 10, "connections per WAHA server and process"),
    Setting("WAHA_POOL_MIN", _count, 1, "connections opened ahead of need"),
    Setting("WAHA_POOL_ACQUIRE_TIMEOUT", _whole_ms, 5000, "ms to wait for a free connection"),
    Setting("WAHA_POOL_IDLE_TIMEOUT", _whole_ms, 30000, "ms after which idle connections are dropped"),
    Setting(
        "WAHA_WEBHOOK_SECRET", _secret(16), "dev-webhook-secret-change-me", "root of the per-session HMAC keys", True
    ),
    Setting("WAHA_WEBHOOK_TIMEOUT", _whole_ms, 10000, "ms, bound on each delivery to a tenant endpoint"),
    Setting("WAHA_WEBHOOK_RETRY_ATTEMPTS", _count, 5, "retries of a failed delivery before dead letter"),
    Setting("WEBHOOK_CONCURRENCY", _positive, 16, "deliveries in flight at once per worker process"),
    Setting("WEBHOOK_ENDPOINT_CONCURRENCY", _positive, 8, "deliveries in flight at once per destination and worker"),
    Setting("JWT_HS256_SECRET", _secret(32), None, "shared secret for HS256 JWTs"),
    Setting("JWT_JWKS_URL", _http_url, None, "JWKS URL for RS256 JWTs"),
    Setting("JWT_ISSUER", _text, None, "required iss of JWTs"),
    Setting("JWT_AUDIENCE", _text, None, "required aud of JWTs"),
    Setting("JWT_ALGORITHMS", _csv, ["RS256", "HS256"], "allow-listed JWT algorithms"),
    Setting("JWT_MAX_LIFETIME", _positive, 86400, "seconds; longest accepted JWT lifetime (exp - iat)"),
    Setting("JWT_TENANT_CLAIM", _text, "tenant", "claim naming the tenant slug"),
    Setting("JWT_ROLES_CLAIM", _text, "roles", "claim listing the caller's roles"),
    Setting("OIDC_ISSUER", _http_url, None, "OpenID Connect provider for portal sign-in"),
    Setting("OIDC_CLIENT_ID", _text, None, "OIDC client id"),
    Setting("OIDC_CLIENT_SECRET", _text, None, "OIDC client secret"),
    Setting("WEBAUTHN_RP_ID", _text, None, "passkeys: relying party id, a host name (default: the request's host)"),
    Setting("WEBAUTHN_ORIGIN", _http_url, None, "passkeys: the origin browsers report (default: the request's)"),
    Setting("MAIL_BACKEND", _choice("log", "smtp"), "log", "log prints mails (development only); smtp sends them"),
    Setting("SMTP_URL", _text, None, "smtp://user:pass@host:port for MAIL_BACKEND=smtp"),
    Setting("MAIL_FROM", _text, "portal@localhost", "sender address"),
    Setting("MEDIA_ROOT", _text, str(ROOT / "instance" / "media"), "folder for stored media"),
    Setting("MEDIA_STORAGE", _media_storage, "", "s3://bucket/prefix keeps media in a bucket (empty: MEDIA_ROOT)"),
    Setting("MEDIA_S3_ENDPOINT_URL", _http_url, None, "S3-compatible endpoint (else AWS_ENDPOINT_URL, else AWS)"),
    Setting("MEDIA_S3_REGION", _text, None, "bucket region (else AWS_REGION)"),
    Setting("MEDIA_S3_ACCESS_KEY_ID", _text, None, "access key (else AWS_ACCESS_KEY_ID or an instance role)"),
    Setting("MEDIA_S3_SECRET_ACCESS_KEY", _text, None, "secret key (else AWS_SECRET_ACCESS_KEY)"),
    Setting("MEDIA_PRESIGNED_URLS", _boolean, False, "S3: answer media with a redirect to a presigned URL"),
    Setting("MEDIA_PRESIGNED_TTL", _positive, 60, "seconds a presigned media URL stays valid"),
    Setting("MEDIA_MAX_BYTES", _positive, 16 * 1024 * 1024, "largest media file accepted or downloaded"),
    Setting("RETENTION_MESSAGES_DAYS", _positive, 90, "days messages are kept at most; tenants may only shorten it"),
    Setting("RETENTION_MEDIA_DAYS", _positive, 90, "days stored media files are kept at most; tenants may shorten it"),
    Setting("RETENTION_EVENTS_DAYS", _positive, 14, "days webhook events and deliveries are kept at most"),
    Setting("TENANT_DELETION_GRACE_DAYS", _positive, 30, "days between a tenant's deletion request and the deletion"),
    Setting("TENANT_EXPORT_TTL_HOURS", _positive, 72, "hours a whole-tenant export can be downloaded"),
    Setting("METRICS_TOKEN", _text, None, "bearer token for /metrics (else loopback only)"),
    Setting("WEBHOOK_ALLOW_PRIVATE", _boolean, False, "allow outbound destinations on private addresses"),
    Setting("SYNC_INTERVAL", _positive, 30, "seconds between session status syncs"),
    Setting("CAMPAIGN_CHECK_RATE", _positive, 5, "numbers a campaign checks with WhatsApp per second (check-exists)"),
    Setting(
        "WEBHOOK_REPLAY_WINDOW",
        _count,
        3600,
        "seconds an inbound WAHA event's signed timestamp may lie in the past (0: no window)",
    ),
    Setting("WEBHOOK_CLOCK_SKEW", _count, 300, "seconds an inbound WAHA event's timestamp may lie in the future"),
    Setting("LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", "log level"),
    Setting("LOG_FORMAT", _choice("json", "text"), "text", "json in production"),
    Setting("API_RATE_LIMIT", _text, "600 per minute", "per-token limit of the /waha API"),
    Setting(
        "API_AUTH_FAILURE_LIMIT",
        _positive,
        20,
        "failed /waha authentications per client address and minute before it gets 429",
    ),
    Setting(
        "TRUSTED_PROXIES",
        _trusted_proxies,
        0,
        "reverse proxies whose X-Forwarded-For/-Proto/-Host are believed: a count, or networks (CIDRs)",
    ),
)

SETTING_NAMES = {s.name for s in SETTINGS}


def load_settings(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Parse every known variable; return (values, problems). Missing production values are problems."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    env = environ.get("PORTAL_ENV", "development")
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        if raw is None or raw == "":
            values[setting.name] = setting.default
            if env == "production" and setting.required_in_production:
                # development defaults never serve in production
                problems.append(f"{setting.name} is required in production ({setting.help})")
            continue
        try:
            values[setting.name] = setting.parse(raw, setting.name)
        except ValueError as exc:
            problems.append(str(exc))
            values[setting.name] = setting.default
    if env == "production":
        if str(values.get("DATABASE_URL") or "").startswith("sqlite"):
            problems.append("DATABASE_URL must point to PostgreSQL in production")
        if values["MAIL_BACKEND"] == "log":
            problems.append(
                "MAIL_BACKEND=log writes password-reset and invitation links to the log; set "
                "MAIL_BACKEND=smtp and SMTP_URL in production"
            )
    if values["WAHA_POOL_MIN"] > values["WAHA_POOL_MAX"]:
        problems.append(
            f"WAHA_POOL_MIN ({values['WAHA_POOL_MIN']}) must not exceed WAHA_POOL_MAX ({values['WAHA_POOL_MAX']})"
        )
    if values["MAIL_BACKEND"] == "smtp" and not values["SMTP_URL"]:
        problems.append("SMTP_URL is required when MAIL_BACKEND=smtp")
    if values["OIDC_ISSUER"] and not (values["OIDC_CLIENT_ID"] and values["OIDC_CLIENT_SECRET"]):
        problems.append("OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are required when OIDC_ISSUER is set")
    return values, problems


def _instance_secret(instance_path: Path) -> str:
    """Development only: a random SECRET_KEY kept under instance/ so sign-ins survive restarts."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def build_config(environ: Mapping[str, str] | None = None, instance_path: Path | None = None) -> dict[str, Any]:
    """The Flask config mapping for `environ` (defaults to os.environ). Raises ConfigError in production."""
    environ = os.environ if environ is None else environ
    instance_path = instance_path or ROOT / "instance"
    values, problems = load_settings(environ)
    if problems and values["PORTAL_ENV"] == "production":
        raise ConfigError(problems)
    if not values["SECRET_KEY"]:
        values["SECRET_KEY"] = _instance_secret(instance_path)
    if not values["DATABASE_URL"]:
        instance_path.mkdir(parents=True, exist_ok=True)
        values["DATABASE_URL"] = f"sqlite:///{instance_path / 'portal.db'}"
    values["CONFIG_PROBLEMS"] = problems
    return values


def _limiter_storage_options(values: Mapping[str, Any]) -> dict[str, Any]:
    from portal.redisconn import limiter_storage_options

    return limiter_storage_options(values["REDIS_TIMEOUT"])


def _engine_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """PostgreSQL: every connection ends a transaction left idle for DATABASE_IDLE_TRANSACTION_TIMEOUT.

    A host that vanishes mid-transaction (killed, cut off the network) sends no FIN: without this its backend
    would wait for the next command, holding the transaction's row and advisory locks (a worker's claim on a
    session's events), until TCP gave up on the peer, which takes hours by default. Options already given in
    DATABASE_URL (?options=...) are kept."""
    from sqlalchemy.engine import make_url

    if not values["DATABASE_URL"]:
        return {}
    url = make_url(values["DATABASE_URL"])
    if url.get_backend_name() != "postgresql":
        return {}
    given = url.query.get("options")
    own = f"-c idle_in_transaction_session_timeout={values['DATABASE_IDLE_TRANSACTION_TIMEOUT']}"
    options = " ".join([*((given,) if isinstance(given, str) else tuple(given or ())), own])
    return {"connect_args": {"options": options}}


def flask_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flask and extension keys derived from the portal's own settings."""
    production = values["PORTAL_ENV"] == "production"
    return {
        "SQLALCHEMY_DATABASE_URI": values["DATABASE_URL"],
        # no pool_pre_ping: portal.dbengines pings a pooled connection only after it was idle for a second
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(values),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # a remembered browser stays signed in this long (its server-side session expires with it)
        "REMEMBER_COOKIE_DURATION": timedelta(days=30),
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": values["MEDIA_MAX_BYTES"] + 1024 * 1024,
        "RATELIMIT_STORAGE_URI": values["REDIS_URL"] or "memory://",
        # Redis down: limits are counted in this process until Redis answers again (portal.redisconn)
        "RATELIMIT_STORAGE_OPTIONS": _limiter_storage_options(values) if values["REDIS_URL"] else {},
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_HEADERS_ENABLED": True,
        # Flask-Limiter would put Retry-After on every answer (and raise ours on a 503); Retry-After is only
        # sent with 429 and 503, by portal.errors
        "RATELIMIT_HEADER_RETRY_AFTER": "X-RateLimit-Retry-After",
        "TESTING": values["PORTAL_ENV"] == "testing",
    }


def environ_for_tests(**overrides: str) -> dict[str, str]:
    """Environment for the test suite: PostgreSQL and Redis on this machine unless overridden."""
    environ = {
        "PORTAL_ENV": "testing",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "DATABASE_URL": os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/portal_test"),
        "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "WAHA_WEBHOOK_SECRET": "test-webhook-secret-0123456789",
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "LOG_LEVEL": "WARNING",
    }
    environ.update(overrides)
    return environ
