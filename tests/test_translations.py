"""The translated portal: the catalogues are complete and in step with the sources, their translations keep the
placeholders, and no template shows wording that bypasses _() (so a new page is translatable from day one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po
from jinja2 import Environment

from portal.i18n import LANGUAGES
from tests.i18n_scan import check_tree, findings

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "portal" / "translations"
FOREIGN = [code for code in LANGUAGES if code != "en"]
PLACEHOLDER = re.compile(r"%\([A-Za-z_0-9]+\)s|\{[a-z_]+\}")
HOW_TO_FIX = (
    "run scripts/i18n extract, then write the msgstr of each new entry in every portal/translations/*/LC_MESSAGES/"
    "messages.po (and scripts/i18n compile)"
)


def _catalog(path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        return read_po(fh)


def _ids(catalog) -> set:  # type: ignore[no-untyped-def]
    return {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}


def _env() -> Environment:
    return Environment(extensions=["jinja2.ext.i18n", "jinja2.ext.do"])


@pytest.mark.parametrize("language", FOREIGN)
def test_every_message_is_translated(language: str) -> None:
    catalog = _catalog(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po")
    missing = []
    for message in catalog:
        if not message.id:
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(forms):
            missing.append(message.id)
    assert not missing, f"{len(missing)} untranslated or fuzzy entries in {language}: {missing[:20]}; {HOW_TO_FIX}"


@pytest.mark.parametrize("language", FOREIGN)
def test_translations_keep_the_placeholders(language: str) -> None:
    """A msgstr that loses or invents a %(name)s breaks the page it is shown on (KeyError) or drops a value."""
    catalog = _catalog(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po")
    wrong = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        if isinstance(message.id, str):
            if set(PLACEHOLDER.findall(message.string)) != set(PLACEHOLDER.findall(message.id)):
                wrong.append(message.id)
        else:  # plural forms: each may leave out %(num)s (a language can say "one message"), never invent one
            allowed = set(PLACEHOLDER.findall(message.id[1]))
            if any(not set(PLACEHOLDER.findall(form)) <= allowed for form in message.string):
                wrong.append(message.id)
    assert not wrong, f"translations of {language} with other placeholders than the English: {wrong[:10]}"


def test_the_catalogues_are_in_step_with_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-extract the messages of portal/ and templates/; the committed catalogues must hold exactly those."""
    fresh = tmp_path / "messages.pot"
    monkeypatch.chdir(ROOT)
    CommandLineInterface().run(
        ["pybabel", "-q", "extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "-k", "N_", "-k", "N_f"]
        + ["--ignore-dirs", ".* __pycache__", "--no-location", "-o", str(fresh), "."]
    )
    sources = _ids(_catalog(fresh))
    assert len(sources) > 500
    committed = {"messages.pot": _ids(_catalog(TRANSLATIONS / "messages.pot"))}
    committed |= {lang: _ids(_catalog(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po")) for lang in FOREIGN}
    for name, ids in committed.items():
        new, gone = sorted(map(str, sources - ids)), sorted(map(str, ids - sources))
        assert not new and not gone, f"{name} is out of date: new {new[:10]}, gone {gone[:10]}; {HOW_TO_FIX}"


def test_no_template_shows_wording_outside_translation() -> None:
    problems = check_tree(_env(), ROOT / "templates")
    assert not problems, (
        "visible text outside _() (wrap it as {{ _('Text') }} or {{ _('Hello %(name)s', name=x) }}; "
        "see tests/i18n_scan.py for what counts):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("<p>Hello there</p>", ["1: text: 'Hello there'"]),
        ("<p>\n  {{ name }} joined\n</p>", ["2: text: 'joined'"]),
        ('<a href="/x" title="Open it">{{ _("Open") }}</a>', ["1: title: 'Open it'"]),
        ('<input type="search" placeholder="Find a number">', ["1: placeholder: 'Find a number'"]),
        ('<input type="submit" value="Save">', ["1: value: 'Save'"]),
        ('<button aria-label="Close {{ name }}">×</button>', ["1: aria-label: 'Close'"]),
        ("{% block title %}Sessions{% endblock %}", ["1: text: 'Sessions'"]),
        ('<img alt="{% if x %}Photo{% endif %}">', ["1: alt: 'Photo'"]),
    ],
)
def test_the_checker_finds_wording_a_person_reads(source: str, found: list[str]) -> None:
    assert [str(f) for f in findings(_env(), source)] == found


@pytest.mark.parametrize(
    "source",
    [
        "<p>{{ _('Hello %(name)s', name=user.name) }}</p>",
        '<input type="hidden" name="next" value="dashboard"><option value="owner">{{ _("Owner") }}</option>',
        '<a class="button primary" href="/sessions" data-status="WORKING" id="x">{{ label }}</a>',
        "<code>POST /waha/sessions</code><pre>curl -H 'Authorization: Bearer wp_x'</pre>",
        "<script>const label = 'not wording';</script><style>p::after { content: 'x'; }</style>",
        "<!-- a comment in English --><p>WAHA Portal · 42 &middot; 1.5%</p>",
        "{# a Jinja comment #}<h1>{{ _('Dashboard') }}</h1>",
    ],
)
def test_the_checker_lets_translated_and_machine_text_pass(source: str) -> None:
    assert findings(_env(), source) == []
