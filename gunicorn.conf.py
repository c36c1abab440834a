"""gunicorn settings for the web process: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be changed from the environment:

  PORT / GUNICORN_BIND      where to listen (default 0.0.0.0:8000)
  WEB_CONCURRENCY           worker processes (default 2; about one per CPU core)
  GUNICORN_THREADS          threads per worker (default 8; requests wait on PostgreSQL, Redis and WAHA)
  GUNICORN_TIMEOUT          seconds a request may take before its worker is replaced (default 60)
  GUNICORN_MAX_REQUESTS     recycle a worker after this many requests (default 0 = never; each recycled
                            worker leaves its metric files behind until the next start, so keep it large)
  FORWARDED_ALLOW_IPS       proxies whose X-Forwarded-* headers are trusted (default 127.0.0.1)

Metrics with several workers: each worker is its own process, so a /metrics scrape answered by one worker
would only see that worker's counters. prometheus_client's multiprocess mode fixes this: every worker writes
its metric values to files in PROMETHEUS_MULTIPROC_DIR and /metrics merges the files of all workers. The
variable must be set before the app (and prometheus_client) is imported, which is why it is set here, in the
master, before any worker starts. The directory is emptied when gunicorn starts (old files would add stale
counts) and `child_exit` removes the live gauges of a worker that exited. Point it at a tmpfs in production
(the Docker image uses /tmp/portal-metrics); it must not be shared between two gunicorn masters, which is
why the default is a directory of this master's own.
"""

from __future__ import annotations

import glob
import os

# This file is read by the master before it forks; its pid keeps two masters on one machine apart.
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", f"/tmp/portal-metrics-{os.getpid()}")

bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# A list query with every filter at its longest (q, chatId, since, until, a cursor, percent-encoded) runs past
# gunicorn's default 4094-byte request line; gunicorn answers that, and an over-long header, itself, in HTML.
limit_request_line = 8190  # gunicorn's largest
limit_request_field_size = 16384  # a long JWT in Authorization
# The portal writes its own access log line (request id, tenant, route, status, time); gunicorn's would repeat it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Workers' heartbeat files go to memory, not to a disk that may stall (containers often have no /tmp tmpfs).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def on_starting(server):
    """Start from an empty metrics directory: files of a previous run would add their counts to this one."""
    os.makedirs(_metrics_dir, exist_ok=True)
    for path in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.remove(path)


def child_exit(server, worker):
    """Drop the live gauges of a worker that exited (counters and histograms stay: they are totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
