"""Data protection: a person's export and erasure, the tenant's export and its deletion with a grace period.

Retention by age is `services.retention` (run by the retention job, services.maintenance.prune)."""

from portal.services.privacy.archive import remove, stream_file
from portal.services.privacy.contact_erase import EraseReport, erase_contact
from portal.services.privacy.contact_export import contact_document, count_messages, export_contact
from portal.services.privacy.subject import Subject, by_contact, by_phone
from portal.services.privacy.tenant_deletion import (
    cancel_deletion,
    owned_tenant,
    purge_due,
    purge_tenant,
    request_deletion,
    scheduled_for_owner,
)
from portal.services.privacy.tenant_export import (
    ExportExpired,
    build_export,
    expire_exports,
    export_file,
    list_exports,
    request_export,
)

__all__ = [
    "EraseReport",
    "ExportExpired",
    "Subject",
    "build_export",
    "by_contact",
    "by_phone",
    "cancel_deletion",
    "contact_document",
    "count_messages",
    "erase_contact",
    "expire_exports",
    "export_contact",
    "export_file",
    "list_exports",
    "owned_tenant",
    "purge_due",
    "purge_tenant",
    "remove",
    "request_deletion",
    "request_export",
    "scheduled_for_owner",
    "stream_file",
]
