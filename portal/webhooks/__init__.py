"""Inbound webhooks from WAHA servers."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

from portal.webhooks import waha  # noqa: E402,F401  (registers the routes on bp)
