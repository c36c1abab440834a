# syntax=docker/dockerfile:1
# WAHA Portal image: one image for every process (web, worker, scheduler, release); the command picks the role.
#   docker build -t waha-portal .
#   docker run ... waha-portal                                   -> web (gunicorn, port 8000)
#   docker run ... waha-portal flask --app wsgi worker           -> RQ worker
#   docker run ... waha-portal flask --app wsgi scheduler        -> periodic jobs (run exactly one)
#   docker run ... waha-portal flask --app wsgi db upgrade       -> release step (migrations)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- builder: virtualenv and front-end assets
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.txt ./
# requirements.txt is the runtime set; tests, lint and the embedded default's extras live in the other
# requirements files and stay out of the image. Every runtime package ships wheels, so no compiler is needed.
RUN pip install -r requirements.txt
# htmx and any other pinned asset, checked against its integrity hash (static/assets.json).
COPY static/assets.json static/assets.json
COPY scripts/fetch_assets.py scripts/fetch_assets.py
RUN python scripts/fetch_assets.py
# The message catalogues, compiled here (the .mo files are not in the repository).
COPY portal/translations portal/translations
RUN pybabel compile -d portal/translations

# ---------------------------------------------------------------- runtime: the app as a non-root user
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORTAL_ENV=production \
    LOG_FORMAT=json \
    FLASK_APP=wsgi \
    PORT=8000 \
    MEDIA_ROOT=/data/media
RUN groupadd --system --gid 10001 portal \
 && useradd --system --uid 10001 --gid portal --home-dir /app --no-create-home --shell /usr/sbin/nologin portal \
 && mkdir -p /app/instance /data/media \
 && chown portal:portal /app/instance /data/media
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Code is owned by root and read-only for the app user; only instance/ and /data/media are writable.
COPY wsgi.py gunicorn.conf.py Procfile ./
COPY portal ./portal
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY --from=builder /src/static/vendor ./static/vendor
COPY --from=builder /src/portal/translations ./portal/translations
USER portal:portal
VOLUME ["/data/media"]
EXPOSE 8000
# /healthz touches nothing but the process; readiness (/readyz) is for the load balancer, not for restarts.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
