"""Reading a CSV file people made: any line endings, and a line the csv module cannot read named by its number."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from portal.i18n import N_f
from portal.services.errors import Invalid


def csv_rows(text: str, field: str) -> Iterator[list[str]]:
    """The rows of a CSV text, whatever its line endings (\\n, \\r\\n, or the lone \\r of older spreadsheets); a line
    the csv module cannot read (a value over its 128 KB limit, a NUL) is Invalid on `field`, with its number."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            raise Invalid.field(
                field,
                N_f(
                    "Line %(line)s of the file cannot be read as CSV: a value is longer than 128 KB, or holds a "
                    "NUL character.",
                    line=reader.line_num,
                ),
            ) from None
