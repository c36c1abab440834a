"""PNG images: real QR codes made with segno (no Pillow needed)."""

from __future__ import annotations

import io
from functools import lru_cache

import segno


@lru_cache(maxsize=64)
def qr_png(value: str, scale: int = 4) -> bytes:
    """A scannable PNG QR code of `value`."""
    buf = io.BytesIO()
    segno.make(value, error="l", micro=False).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


def screen_png(text: str) -> bytes:
    """Stand-in for a browser screenshot: a small PNG that encodes `text`."""
    return qr_png(text, scale=3)
