"""Message templates of campaigns: text with {{variable}} placeholders filled from each recipient's row."""

from __future__ import annotations

import re
from typing import Any

from portal.i18n import N_, N_f
from portal.services.errors import Invalid

TEMPLATE_MAX = 4096
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


def variables_of(template: str) -> list[str]:
    """The variables a template uses, in order of first use; Invalid(field "template") for a malformed one."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if not _NAME.match(name):
            raise Invalid.field(
                "template", N_f("“{{%(name)s}}” is not a variable name (letters, digits and _).", name=name)
            )
        if name not in names:
            names.append(name)
    return names


def clean_template(template: Any, available: list[str]) -> tuple[str, list[str]]:
    """The template, stripped, and the variables it uses; Invalid(field "template", code "unknown_variable")
    when it uses a variable the audience does not have, so nothing is queued with a hole in it."""
    if not isinstance(template, str) or not template.strip():
        raise Invalid.field("template", N_("Write the message to send."))
    template = template.strip()
    if len(template) > TEMPLATE_MAX:
        raise Invalid.field(
            "template", N_f("The message may have at most %(TEMPLATE_MAX)s characters.", TEMPLATE_MAX=TEMPLATE_MAX)
        )
    used = variables_of(template)
    unknown = [name for name in used if name not in available]
    if unknown:
        names = ", ".join("{{" + n + "}}" for n in unknown)
        have = ", ".join("{{" + n + "}}" for n in available) or "none"
        raise Invalid(
            N_f(
                "The message uses %(names)s, which the audience does not have (it has: %(have)s).",
                names=names,
                have=have,
            ),
            code="unknown_variable",
            details={"fields": [{"field": "template", "message": f"Unknown variable {names}."}], "unknown": unknown},
        )
    return template, used


def render(template: str, values: dict[str, Any]) -> str:
    """The template with each {{variable}} replaced by the recipient's value."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), template)
