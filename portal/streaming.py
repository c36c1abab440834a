"""A CSV export as an HTTP response, for the pages and the /waha API alike: streamed as it is read, never stored."""

from __future__ import annotations

from flask import Response, stream_with_context

from portal.services.exports import Export


def csv_response(export: Export) -> Response:
    """The export's chunks streamed (the request context stays open until the last one), as an attachment named
    by the export; the row count as it started in X-Export-Rows."""
    response = Response(stream_with_context(export.chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Export-Rows"] = str(export.rows)
    # a proxy in front (nginx) passes the chunks on as they come instead of buffering the whole file
    response.headers["X-Accel-Buffering"] = "no"
    return response
