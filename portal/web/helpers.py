"""Small response helpers shared by the page blueprints: redirects that htmx follows, and service errors
written onto the form that caused them."""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, request
from flask_wtf import FlaskForm

from portal.security import quote_location
from portal.services.errors import ServiceError
from portal.tenancy import Principal, current_principal


def is_htmx() -> bool:
    """True for requests htmx made (they want a fragment or an HX-Redirect, not a full page)."""
    return request.headers.get("HX-Request") == "true"


def redirect_to(url: str) -> Response:
    """A 303 for browsers, an HX-Redirect header for htmx (which would otherwise swap the next page in)."""
    if is_htmx():
        response = Response(status=204)
        response.headers["HX-Redirect"] = quote_location(url)
        return response
    return redirect(quote_location(url), code=303)


def principal() -> Principal:
    """The principal of a view behind `require()` (never None there)."""
    found = current_principal()
    assert found is not None, "views using principal() must be decorated with require()"
    return found


def apply_service_error(form: FlaskForm, exc: ServiceError, aliases: dict[str, str] | None = None) -> None:
    """Put a service's refusal next to the fields it names, or at the top of the form."""
    aliases = aliases or {}
    placed = False
    for item in (exc.details or {}).get("fields", []) or []:
        name = aliases.get(str(item.get("field")), str(item.get("field")))
        field: Any = form._fields.get(name)
        if field is not None and name not in ("csrf_token",):
            field.errors = list(field.errors) + [item.get("message") or exc.message]
            placed = True
    if not placed:
        name = aliases.get(f"code:{exc.code}")
        field = form._fields.get(name) if name else None
        if field is not None:
            field.errors = list(field.errors) + [exc.message]
        else:
            form.form_errors.append(exc.message)
