"""Finds the visible wording of a Jinja template that does not go through `_()`.

A template is cut into pieces by Jinja's own lexer: template data, `{{ ... }}` expressions and `{% ... %}`
statements. A small HTML reader walks the data: text between tags, and the values of the attributes a person
reads (title, placeholder, aria-label, alt, the value of a submit button, a confirmation question). Any of those
holding a letter outside an expression is a finding, reported as file:line and the text. Tags, `<script>` and
`<style>` bodies, HTML comments and machine attributes (href, class, data-*, value of an option) are not wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment

# Attributes whose value a person reads or hears.
READ_ATTRS = {"title", "placeholder", "aria-label", "alt", "data-confirm", "hx-confirm", "label", "data-label"}
# Inputs whose value is shown as the button's text.
BUTTON_INPUT_TYPES = {"submit", "button", "reset"}
# Elements whose text is code, the same in every language.
CODE_TAGS = {"code", "pre", "kbd", "samp"}
# Text that is the same in every language.
ALLOWED = ("WAHA Portal", "WAHA", "WhatsApp", "API", "OpenAPI", "HMAC", "QR", "JSON", "CSV", "URL", "ID")
ENTITY = re.compile(r"&[a-zA-Z]+;|&#\d+;")
LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


@dataclass
class Piece:
    kind: str  # "data", "var" or "block"
    text: str
    line: int
    start: int = -1  # offset in the source, where known
    end: int = -1


@dataclass
class Finding:
    line: int
    text: str
    where: str  # "text" or the attribute name

    def __str__(self) -> str:
        return f"{self.line}: {self.where}: {self.text!r}"


@dataclass
class Run:
    """A stretch of visible text (or one attribute value): data and expressions, no statement between."""

    where: str
    pieces: list[tuple[Piece, int, int]] = field(default_factory=list)  # piece and the slice of its text


def has_words(text: str) -> bool:
    text = ENTITY.sub(" ", text)
    for word in sorted(ALLOWED, key=len, reverse=True):
        text = text.replace(word, " ")
    return bool(LETTER.search(text))


def lex_pieces(env: Environment, source: str) -> list[Piece]:
    """The template as pieces, from Jinja's lexer (comments dropped)."""
    pieces: list[Piece] = []
    current: Piece | None = None
    for lineno, token, value in env.lex(source):
        if token == "data":
            pieces.append(Piece("data", value, lineno))
        elif token in ("variable_begin", "block_begin"):
            current = Piece("var" if token == "variable_begin" else "block", value, lineno)
        elif token in ("variable_end", "block_end") and current is not None:
            current.text += value
            pieces.append(current)
            current = None
        elif current is not None:
            current.text += value + " "
        elif token in ("raw_begin", "raw_end"):
            pieces.append(Piece("block", value, lineno))
    return pieces


def source_pieces(source: str) -> list[Piece]:
    """The template as pieces with their offsets (for rewriting the source)."""
    pieces: list[Piece] = []
    pos = 0
    for m in re.finditer(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", source, re.S):
        if m.start() > pos:
            pieces.append(Piece("data", source[pos : m.start()], source.count("\n", 0, pos) + 1, pos, m.start()))
        kind = {"{{": "var", "{%": "block", "{#": "comment"}[m.group()[:2]]
        if kind != "comment":
            pieces.append(Piece(kind, m.group(), source.count("\n", 0, m.start()) + 1, m.start(), m.end()))
        else:
            pieces.append(Piece("block", m.group(), source.count("\n", 0, m.start()) + 1, m.start(), m.end()))
        pos = m.end()
    if pos < len(source):
        pieces.append(Piece("data", source[pos:], source.count("\n", 0, pos) + 1, pos, len(source)))
    return pieces


def runs(pieces: list[Piece]) -> list[Run]:
    """The visible text runs and the read attribute values of a template."""
    out: list[Run] = []
    text = Run("text")
    state = "text"  # text, tag, value, comment, raw
    tag = ""
    tag_attrs: dict[str, str] = {}
    attr = ""
    quote = ""
    value_run: Run | None = None
    value_done: list[Run] = []
    raw_until = ""
    closing = False
    code_depth = 0

    def close_text() -> None:
        nonlocal text
        if text.pieces:
            out.append(text)
        text = Run("text")

    for piece in pieces:
        if piece.kind != "data":
            if state == "text":
                if piece.kind == "var" and not code_depth:
                    text.pieces.append((piece, 0, len(piece.text)))
                else:
                    close_text()
            elif state == "value" and value_run is not None:
                if piece.kind == "var":
                    value_run.pieces.append((piece, 0, len(piece.text)))
                else:  # a statement inside a value: the value is read in parts
                    value_done.append(value_run)
                    value_run = Run(attr)
            continue
        s = piece.text
        i = 0
        seg_start = 0
        while i < len(s):
            c = s[i]
            if state == "text":
                if c == "<":
                    if i > seg_start and not code_depth:
                        text.pieces.append((piece, seg_start, i))
                    close_text()
                    if s.startswith("<!--", i):
                        state = "comment"
                        i += 4
                        continue
                    m = re.match(r"(</?)([a-zA-Z0-9-]*)", s[i:])
                    tag = (m.group(2) if m else "").lower()
                    closing = bool(m and m.group(1) == "</")
                    tag_attrs = {}
                    state = "tag"
                    i += len(m.group(0)) if m else 1
                    continue
                i += 1
                continue
            if state == "comment":
                end = s.find("-->", i)
                if end < 0:
                    i = len(s)
                    continue
                i = end + 3
                state = "text"
                seg_start = i
                continue
            if state == "raw":
                end = s.lower().find(raw_until, i)
                if end < 0:
                    i = len(s)
                    continue
                i = end
                state = "text"
                seg_start = i
                continue
            if state == "tag":
                if c == ">":
                    state = "text"
                    if tag in CODE_TAGS:
                        code_depth = max(0, code_depth + (-1 if closing else 1))
                    if tag in ("script", "style") and not closing and s[i - 1 : i] != "/":
                        state = "raw"
                        raw_until = f"</{tag}"
                    i += 1
                    seg_start = i
                    continue
                m = re.match(r"([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*([\"'])", s[i:])
                if m:
                    attr = m.group(1).lower()
                    quote = m.group(2)
                    state = "value"
                    i += len(m.group(0))
                    value_run = Run(attr)
                    value_done = []
                    continue
                m = re.match(r"([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*([^\s>\"']+)", s[i:])
                if m:
                    tag_attrs[m.group(1).lower()] = m.group(2)
                    i += len(m.group(0))
                    continue
                i += 1
                continue
            if state == "value":
                assert value_run is not None
                end = s.find(quote, i)
                stop = len(s) if end < 0 else end
                value_run.pieces.append((piece, i, stop))
                if end < 0:
                    i = len(s)
                    continue
                tag_attrs[attr] = "".join(p.text[a:b] for p, a, b in value_run.pieces)
                if _read_attr(tag, attr, tag_attrs):
                    out.extend(value_done)
                    out.append(value_run)
                value_run = None
                state = "tag"
                i = end + 1
                continue
        if state == "text" and seg_start < len(s) and not code_depth:
            text.pieces.append((piece, seg_start, len(s)))
    close_text()
    return out


def _read_attr(tag: str, attr: str, attrs: dict[str, str]) -> bool:
    if attr in READ_ATTRS:
        return True
    if attr == "value" and tag == "input":
        return attrs.get("type", "").lower() in BUTTON_INPUT_TYPES
    return False


def findings(env: Environment, source: str) -> list[Finding]:
    found = []
    for run in runs(lex_pieces(env, source)):
        for piece, a, b in run.pieces:
            if piece.kind == "data" and has_words(piece.text[a:b]):
                words = " ".join(piece.text[a:b].split())
                line = piece.line + piece.text.count("\n", 0, a + len(piece.text[a:b]) - len(piece.text[a:b].lstrip()))
                found.append(Finding(line, words, run.where))
    return found


def check_tree(env: Environment, root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.html")):
        for f in findings(env, path.read_text(encoding="utf-8")):
            problems.append(f"{path.relative_to(root.parent)}:{f}")
    return problems
