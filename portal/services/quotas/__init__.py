"""Plans and quotas: a tenant's limits, the counters that enforce them at the point of use, usage and warnings.

- `limits`: the quotas, a tenant's effective limits (override, else plan), the one 409 `quota_exceeded`
- `counters`: Redis counters (atomic Lua check-and-take), seeded from `quota_usage`
- `enforce`: the check of each door (send, session, campaign, media, seats, endpoints)
- `reconcile`: the periodic job (Redis to `quota_usage`) and the 80 % / 100 % warnings
- `usage`: the usage page, the API's answer, the platform's table and CSV
- `plans`: the platform admin's plans and a tenant's plan and overrides
"""

from portal.services.quotas.counters import Taken
from portal.services.quotas.enforce import (
    SendGates,
    check_endpoints,
    check_recipients_left,
    check_seats,
    check_sessions,
    check_upload,
    data_lines,
    give_back,
    queue_gate,
    register,
    take_media_bytes,
    take_message,
    take_recipients,
    take_send,
)
from portal.services.quotas.limits import (
    QUOTAS,
    QuotaExceeded,
    default_plan,
    exceeded,
    forget_plans,
    limit_of,
    limits_of,
)
from portal.services.quotas.plans import get_plan, list_plans, save_plan, set_tenant_plan
from portal.services.quotas.reconcile import check_warnings, flush
from portal.services.quotas.usage import all_tenants, as_dict, csv_of, tenant_usage

__all__ = [
    "SendGates",
    "QUOTAS",
    "QuotaExceeded",
    "Taken",
    "all_tenants",
    "as_dict",
    "check_endpoints",
    "check_recipients_left",
    "check_seats",
    "check_sessions",
    "check_upload",
    "check_warnings",
    "csv_of",
    "data_lines",
    "default_plan",
    "exceeded",
    "flush",
    "forget_plans",
    "get_plan",
    "give_back",
    "queue_gate",
    "register",
    "limit_of",
    "limits_of",
    "list_plans",
    "save_plan",
    "set_tenant_plan",
    "take_media_bytes",
    "take_message",
    "take_send",
    "take_recipients",
    "tenant_usage",
]
