"""CSV exports of a tenant's lists (the message log, the audit log, webhook deliveries, contacts) with the filters
of their pages, streamed with flat memory at any size.

- `stream`: keyset batches of a Core select, the CSV writer, the formula guard and ISO 8601 times;
- `tables`: the four exports, each counted and audited when it starts.

The views wrap `Export.chunks` in `stream_with_context`; nothing is read before the response starts but the count.
"""

from portal.services.exports.stream import BATCH_ROWS, FORMULA_START, Export, guard, iso
from portal.services.exports.tables import (
    AUDIT_COLUMNS,
    CONTACT_COLUMNS,
    DELIVERY_COLUMNS,
    MESSAGE_COLUMNS,
    export_audit,
    export_contacts,
    export_deliveries,
    export_messages,
)

__all__ = [
    "AUDIT_COLUMNS",
    "BATCH_ROWS",
    "CONTACT_COLUMNS",
    "DELIVERY_COLUMNS",
    "FORMULA_START",
    "MESSAGE_COLUMNS",
    "Export",
    "export_audit",
    "export_contacts",
    "export_deliveries",
    "export_messages",
    "guard",
    "iso",
]
