"""A minimal PNG reader (1/8-bit greyscale or palette), enough to check the simulator's QR images."""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read(data: bytes) -> tuple[int, int, list[list[bool]]]:
    """Return (width, height, rows of dark pixels)."""
    assert data[:8] == SIGNATURE, "not a PNG"
    pos, idat, palette = 8, b"", None
    width = height = depth = ctype = None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert interlace == 0
        elif kind == b"PLTE":
            palette = [chunk[i : i + 3] for i in range(0, len(chunk), 3)]
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    assert ctype in (0, 3) and depth in (1, 2, 4, 8), (ctype, depth)
    raw = zlib.decompress(idat)
    stride = (width * depth + 7) // 8
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - 1] if x else 0
            b, c = prev[x], (prev[x - 1] if x else 0)
            line[x] = (line[x] + [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]) & 0xFF
        prev = line
        values = []
        for x in range(width):
            bit = x * depth
            values.append((line[bit // 8] >> (8 - depth - bit % 8)) & ((1 << depth) - 1))
        if ctype == 3:
            rows.append([sum(palette[v]) < 384 for v in values])
        else:
            rows.append([v < (1 << depth) // 2 for v in values])
    return width, height, rows
