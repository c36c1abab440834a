"""HTTP request metrics, counted per process by hooks on the Flask app.

HTTP requests happen in the web processes only, so these are plain prometheus_client metrics; under gunicorn
with several workers each worker writes its own files under ``PROMETHEUS_MULTIPROC_DIR`` (set by
gunicorn.conf.py) and ``/metrics`` merges them with the multiprocess collector, whichever worker answers.
Labels are route templates (never raw paths), HTTP methods and status codes.
"""

from __future__ import annotations

import time

from flask import Flask, Response, request
from prometheus_client import Counter, Histogram, disable_created_metrics

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# `*_created` series double the output and nothing here uses them (multiprocess mode never has them).
disable_created_metrics()

http_requests = Counter(
    "portal_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
http_duration = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)

_STARTED = "portal.metrics.started"


def _route_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def init_app(app: Flask) -> None:
    """Count and time every request by method, route template and status."""

    @app.before_request
    def start_timer() -> None:
        request.environ[_STARTED] = time.perf_counter()

    @app.after_request
    def count_request(response: Response) -> Response:
        started = request.environ.get(_STARTED)
        method = request.method if request.method in HTTP_METHODS else "OTHER"
        route = _route_label()
        http_requests.labels(method, route, str(response.status_code)).inc()
        if started is not None:
            http_duration.labels(method, route).observe(time.perf_counter() - started)
        return response
