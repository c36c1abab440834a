"""The integrators' JSON API under /waha."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/waha")
