"""Command line: python -m wahasim --host 127.0.0.1 --port 3000 --api-key KEY [options]."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from werkzeug.serving import make_server

from .app import create_app
from .settings import ENGINES, Settings


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false")


def parse_args(argv: list[str] | None = None) -> Settings:
    """Turn command-line options into Settings."""
    return _settings(_parser().parse_args(argv))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wahasim", description="Fake WAHA server (in memory).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument(
        "--api-key",
        default="sim-key",
        help="value expected in X-Api-Key; 'sha512:<hex>' accepted; empty string disables auth",
    )
    p.add_argument("--engine", default="GOWS", type=str.upper, choices=ENGINES)
    p.add_argument(
        "--core-single-session",
        action="store_true",
        help="behave like a Core image before 2026.6.1 (only 'default', Plus-only 422s)",
    )
    p.add_argument("--tier", default=None, help="tier reported by /api/server/version (default CORE or PLUS by mode)")
    p.add_argument(
        "--start-default",
        type=_bool,
        default=False,
        metavar="false|true",
        help="what an omitted 'start' means on POST /api/sessions (WAHA code: false)",
    )
    p.add_argument("--starting-delay", type=float, default=0.3, help="seconds in STARTING")
    p.add_argument("--qr-first-seconds", type=float, default=60.0)
    p.add_argument("--qr-next-seconds", type=float, default=20.0)
    p.add_argument("--qr-max", type=int, default=6, help="QR codes shown before FAILED")
    p.add_argument("--ack-delay", type=float, default=0.3, help="seconds between SERVER, DEVICE and READ acks")
    p.add_argument(
        "--auto-read",
        type=_bool,
        default=True,
        metavar="true|false",
        help="sent messages reach READ by themselves; false: DEVICE until the customer reads them (/_sim read)",
    )
    p.add_argument(
        "--auto-scan",
        type=float,
        default=None,
        metavar="SECONDS",
        help="pair automatically this long after the first QR (off by default)",
    )
    p.add_argument("--auto-scan-phone", default="491701234567")
    p.add_argument("--files-lifetime", type=float, default=180.0, help="seconds media files stay downloadable")
    p.add_argument("--public-url", default=None, help="base of media.url (default http://host:port)")
    p.add_argument("--version", default="2026.7.1", help="WAHA version to report")
    p.add_argument(
        "--status-wait", type=float, default=0.0, help="seconds to wait for the expected session status before a 422"
    )
    p.add_argument("--webhook-timeout", type=float, default=10.0)
    p.add_argument("--webhook-workers", type=int, default=4)
    p.add_argument("--log-level", default="INFO")
    p.add_argument(
        "--server",
        default="waitress",
        choices=("waitress", "werkzeug"),
        help="waitress keeps connections alive as WAHA (Node) does; werkzeug closes each one after its answer, "
        "and only it can drop a connection for `fail-next` with status 0",
    )
    return p


def _settings(a: argparse.Namespace) -> Settings:
    return Settings(
        host=a.host,
        port=a.port,
        api_key=a.api_key or None,
        engine=a.engine,
        core_single_session=a.core_single_session,
        tier=a.tier,
        start_default=a.start_default,
        starting_delay=a.starting_delay,
        qr_first_seconds=a.qr_first_seconds,
        qr_next_seconds=a.qr_next_seconds,
        qr_max=a.qr_max,
        ack_delay=a.ack_delay,
        auto_read=a.auto_read,
        auto_scan=a.auto_scan,
        auto_scan_phone=a.auto_scan_phone,
        files_lifetime=a.files_lifetime,
        public_url=a.public_url,
        version=a.version,
        status_wait=a.status_wait,
        webhook_timeout=a.webhook_timeout,
        webhook_workers=a.webhook_workers,
        log_level=a.log_level.upper(),
    )


# WAHA is a Node server: it keeps a connection open between requests and closes it after 5 s idle (Node's
# keepAliveTimeout). waitress does the same, so a client's connection pool is exercised as against WAHA.
KEEP_ALIVE_S = 5


def _serve_waitress(app: Any, settings: Any) -> tuple[int, Any, Any]:
    from waitress.server import create_server  # requirements-embedded.txt; --server werkzeug needs only Flask

    server = create_server(app, host=settings.host, port=settings.port, threads=8, channel_timeout=KEEP_ALIVE_S)

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # terminate() ends the loop as Ctrl-C does, through the cleanup below
    return int(server.effective_port), server.run, server.close


def _serve_werkzeug(app: Any, settings: Any) -> tuple[int, Any, Any]:
    server = make_server(settings.host, settings.port, app, threaded=True)
    return server.server_port, server.serve_forever, server.server_close


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # werkzeug and waitress raise their own loggers to INFO unless a level is set, so set it here.
    for name in ("werkzeug", "waitress"):
        logging.getLogger(name).setLevel(settings.log_level)
    app = create_app(settings)
    serve = _serve_waitress if args.server == "waitress" else _serve_werkzeug
    port, run, close = serve(app, settings)
    logging.getLogger("wahasim").info(
        "WAHA simulator %s (%s) on http://%s:%d, control page at /_sim/",
        settings.version,
        settings.engine,
        settings.host,
        port,
    )
    try:
        run()
    except KeyboardInterrupt:
        pass
    finally:
        close()
        app.extensions["wahasim"].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
