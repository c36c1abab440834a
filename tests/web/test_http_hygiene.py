"""What a browser gets besides the page itself: hashed static addresses cached for a year, compressed responses."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import brotli
import pytest

from portal.static_assets import IMMUTABLE, StaticManifest, hashed_name

ROOT = Path(__file__).resolve().parents[2]


def _static_links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_pages_link_every_static_file_by_a_content_hashed_name_browsers_keep_for_a_year(login: Any, owner: Any) -> None:
    client = login(owner)
    links = _static_links(client.get("/sessions/").get_data(as_text=True))

    assert any(re.fullmatch(r"/static/vendor/htmx\.min\.[0-9a-f]{12}\.js", link) for link in links), links
    assert any(re.fullmatch(r"/static/css/portal\.[0-9a-f]{12}\.css", link) for link in links), links
    for link in links:
        response = client.get(link)
        plain = re.sub(r"\.[0-9a-f]{12}(\.[a-z]+)$", r"\1", link.removeprefix("/static/"))
        assert response.status_code == 200, link
        assert response.headers["Cache-Control"] == IMMUTABLE
        assert response.data == (ROOT / "static" / plain).read_bytes()


def test_the_plain_address_still_answers_but_is_revalidated(client: Any) -> None:
    response = client.get("/static/css/portal.css")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.data == (ROOT / "static" / "css" / "portal.css").read_bytes()


@pytest.mark.parametrize(
    "path",
    ["/static/css/portal.000000000000.css", "/static/../portal/__init__.py", "/static/css/../../wsgi.py"],
)
def test_made_up_hashes_and_paths_outside_the_folder_are_not_found(client: Any, path: str) -> None:
    assert client.get(path).status_code == 404


def test_a_changed_file_gets_a_new_address_and_the_old_one_is_forgotten(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    script = tmp_path / "js" / "app.js"
    script.write_text("let a = 1;")
    manifest = StaticManifest(tmp_path, watch=True)
    first = manifest.url_name("js/app.js")

    script.write_text("let a = 2; // longer")
    second = manifest.url_name("js/app.js")

    assert first != second
    assert re.fullmatch(r"js/app\.[0-9a-f]{12}\.js", second)
    assert manifest.plain_name(second) == "js/app.js"
    assert manifest.plain_name(first) is None
    assert manifest.url_name("js/missing.js") == "js/missing.js"


def test_hashed_names_put_the_hash_before_the_last_suffix_only() -> None:
    digest = "ab" * 32
    assert hashed_name("vendor/htmx.min.js", digest) == "vendor/htmx.min.abababababab.js"
    assert hashed_name("LICENSE", digest) == "LICENSE.abababababab"
    assert hashed_name("v1.2/readme", digest) == "v1.2/readme.abababababab"


def test_html_is_sent_brotli_or_gzip_compressed_as_the_browser_accepts(login: Any, owner: Any) -> None:
    client = login(owner)
    plain = client.get("/sessions/", headers={"Accept-Encoding": "identity"})
    as_br = client.get("/sessions/", headers={"Accept-Encoding": "gzip, deflate, br"})
    as_gzip = client.get("/sessions/", headers={"Accept-Encoding": "gzip"})

    assert "Content-Encoding" not in plain.headers
    assert as_br.headers["Content-Encoding"] == "br"
    assert as_gzip.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in as_br.headers["Vary"]
    assert len(as_br.data) < len(plain.data) / 2
    # The page differs per request only by its CSRF token and nonce; the rest comes back byte for byte.
    unpacked = brotli.decompress(as_br.data).decode()
    assert _static_links(unpacked) == _static_links(plain.get_data(as_text=True))
    assert "<html" in gzip.decompress(as_gzip.data).decode()


def test_json_is_compressed_and_small_answers_are_left_alone(client: Any) -> None:
    document = client.get("/waha/openapi.json", headers={"Accept-Encoding": "gzip"})
    health = client.get("/healthz", headers={"Accept-Encoding": "gzip"})

    assert document.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(document.data).startswith(b"{")
    assert len(health.data) < 500 and "Content-Encoding" not in health.headers
