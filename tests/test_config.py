"""Configuration is validated at start-up: production refuses bad values, one clear line each."""

import os
import time

import pytest
import sqlalchemy as sa

from portal import create_app
from portal.config import ConfigError, environ_for_tests, flask_settings, load_settings

PRODUCTION = {
    "PORTAL_ENV": "production",
    # the suite's own key: an app built here re-keys the process-wide cipher of encrypted columns
    "SECRET_KEY": environ_for_tests()["SECRET_KEY"],
    "DATABASE_URL": "postgresql://postgres@127.0.0.1/portal_test",
    # the suite's own Redis database: an app created here rebinds the process-wide Redis client
    "REDIS_URL": environ_for_tests()["REDIS_URL"],
    "PUBLIC_BASE_URL": "https://portal.example.com",
    "WAHA_API_KEY": "prod-key",
    "WAHA_WEBHOOK_SECRET": "prod-webhook-secret-123",
    "MAIL_BACKEND": "smtp",
    "SMTP_URL": "smtp://mailer:mail-password@mail.example.com:587",
}


@pytest.mark.smoke
def test_embedded_default_needs_no_variable():
    values, problems = load_settings({})
    assert problems == []
    assert values["WAHA_TIMEOUT"] == 10000
    assert values["REDIS_URL"] is None


def test_bad_timeout_is_reported_in_words():
    _, problems = load_settings({"WAHA_TIMEOUT": "abc"})
    assert problems == ['WAHA_TIMEOUT must be a whole number of milliseconds, got "abc"']


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("WAHA_RETRY_ATTEMPTS", "-1", 'WAHA_RETRY_ATTEMPTS must be 0 or more, got "-1"'),
        ("WAHA_POOL_MAX", "0", 'WAHA_POOL_MAX must be at least 1, got "0"'),
        ("WAHA_BASE_URL", "waha:3000", 'WAHA_BASE_URL must be an http(s) URL, got "waha:3000"'),
        ("REDIS_URL", "http://x", 'REDIS_URL must be a redis:// URL, got "http://x"'),
        ("WEBHOOK_ALLOW_PRIVATE", "maybe", 'WEBHOOK_ALLOW_PRIVATE must be true or false, got "maybe"'),
    ],
)
def test_each_bad_value_gets_its_own_line(name, value, expected):
    _, problems = load_settings({name: value})
    assert problems == [expected]


def test_pool_min_above_max_is_refused():
    _, problems = load_settings({"WAHA_POOL_MIN": "5", "WAHA_POOL_MAX": "2"})
    assert problems == ["WAHA_POOL_MIN (5) must not exceed WAHA_POOL_MAX (2)"]


def test_production_lists_every_missing_variable():
    _, problems = load_settings({"PORTAL_ENV": "production"})
    missing = {p.split(" ", 1)[0] for p in problems}
    assert {
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "PUBLIC_BASE_URL",
        "WAHA_API_KEY",
        "WAHA_WEBHOOK_SECRET",
    } <= missing


def test_production_app_refuses_to_start_with_a_bad_value():
    with pytest.raises(ConfigError) as excinfo:
        create_app(dict(PRODUCTION, WAHA_TIMEOUT="abc"))
    assert 'WAHA_TIMEOUT must be a whole number of milliseconds, got "abc"' in str(excinfo.value)


def test_production_refuses_sqlite():
    _, problems = load_settings(dict(PRODUCTION, DATABASE_URL="sqlite:///x.db"))
    assert problems == ["DATABASE_URL must point to PostgreSQL in production"]


def test_production_app_starts_with_complete_configuration():
    app = create_app(PRODUCTION)
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_production_refuses_the_log_mail_backend():
    production = {k: v for k, v in PRODUCTION.items() if k not in ("MAIL_BACKEND", "SMTP_URL")}
    for environ in (production, dict(production, MAIL_BACKEND="log")):
        _, problems = load_settings(environ)
        assert problems == [
            "MAIL_BACKEND=log writes password-reset and invitation links to the log; set "
            "MAIL_BACKEND=smtp and SMTP_URL in production"
        ]


def test_check_config_reports_the_log_mail_backend_in_production():
    from portal.config import build_config

    with pytest.raises(ConfigError) as excinfo:
        build_config(dict(PRODUCTION, MAIL_BACKEND="log"))
    assert "MAIL_BACKEND=log" in str(excinfo.value)


def test_development_keeps_the_log_mail_backend():
    _, problems = load_settings({"MAIL_BACKEND": "log"})
    assert problems == []


def test_postgresql_connections_end_idle_transactions_and_keep_given_options():
    url = "postgresql://postgres@127.0.0.1/portal?options=-c%20statement_timeout%3D5000"
    values, problems = load_settings({"DATABASE_URL": url, "DATABASE_IDLE_TRANSACTION_TIMEOUT": "15000"})

    options = flask_settings(values)["SQLALCHEMY_ENGINE_OPTIONS"]

    assert problems == []
    assert options == {
        "connect_args": {"options": "-c statement_timeout=5000 -c idle_in_transaction_session_timeout=15000"}
    }
    sqlite = load_settings({"DATABASE_URL": "sqlite:///portal.db"})[0]
    assert flask_settings(sqlite)["SQLALCHEMY_ENGINE_OPTIONS"] == {}  # SQLite: nothing to set


def test_a_transaction_left_idle_by_a_lost_host_is_ended_and_its_locks_freed():
    # What a worker cut off the network mid-transaction leaves behind: a connection holding locks, silent.
    values, _ = load_settings(
        {"DATABASE_URL": os.environ["TEST_DATABASE_URL"], "DATABASE_IDLE_TRANSACTION_TIMEOUT": "300"}
    )
    portal_engine = sa.create_engine(values["DATABASE_URL"], **flask_settings(values)["SQLALCHEMY_ENGINE_OPTIONS"])
    other_engine = sa.create_engine(values["DATABASE_URL"])
    try:
        lost = portal_engine.connect()
        lost.begin()
        lost.execute(sa.text("SELECT pg_advisory_xact_lock(5501, 4242)"))  # as a worker claims a session's events

        with other_engine.connect() as other:
            taken = [other.execute(sa.text("SELECT pg_try_advisory_xact_lock(5501, 4242)")).scalar()]
            other.rollback()
            deadline = time.monotonic() + 10
            while not taken[-1] and time.monotonic() < deadline:
                time.sleep(0.1)
                taken.append(other.execute(sa.text("SELECT pg_try_advisory_xact_lock(5501, 4242)")).scalar())
                other.rollback()

        assert taken[0] is False and taken[-1] is True  # held at first, then freed by the server
        with pytest.raises(sa.exc.DBAPIError, match="idle-in-transaction timeout"):
            lost.execute(sa.text("SELECT 1"))  # the idle transaction's connection was ended
    finally:
        portal_engine.dispose()
        other_engine.dispose()
