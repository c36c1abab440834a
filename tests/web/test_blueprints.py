"""The page blueprints: every one registered from the one list in portal/web, and the area modules sharing only
the web helpers and forms, never importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

import portal.web
from portal.web import BLUEPRINTS

WEB = Path(portal.web.__file__).parent


def _tree(name: str) -> ast.Module:
    return ast.parse((WEB / f"{name}.py").read_text())


def _defines_blueprint(name: str) -> bool:
    return any(
        isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "bp" for t in node.targets)
        for node in _tree(name).body
    )


MODULES = sorted(path.stem for path in WEB.glob("*.py") if path.stem != "__init__")
AREAS = {name for name in MODULES if _defines_blueprint(name)}


def _web_imports(name: str) -> set[str]:
    """The portal.web modules `name` imports."""
    found: set[str] = set()
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.ImportFrom) and node.module == "portal.web":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("portal.web."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("portal.web.")}
    return found


def test_every_page_blueprint_is_registered_from_the_one_list(app):
    assert {blueprint.import_name.rsplit(".", 1)[1] for blueprint in BLUEPRINTS} == AREAS
    assert all(app.blueprints[blueprint.name] is blueprint for blueprint in BLUEPRINTS)


def test_area_modules_import_no_other_area():
    crossing = {name: _web_imports(name) & AREAS for name in MODULES}
    assert {name: areas for name, areas in crossing.items() if areas} == {}
