"""Services: the portal's business rules, one module (or package) per area.

Every door into the portal (the HTML views in `portal.web`, the JSON API in `portal.api`, the WAHA webhook
receiver in `portal.webhooks`, the jobs in `portal.jobs` and the CLI commands) parses its input, calls one
service function and chooses the answer. The rules live here, once.

The contract of a public service function:

- It takes the tenant explicitly (a `Tenant`, or its id in jobs) and, for anything that changes data, an
  `audit.Actor` saying who acts and from where; plus plain values. It never reads `flask.request`, the signed-in
  user or `g`.
- Tenant-owned rows are read with the tenant in the query (`get_for_tenant`, `Model.scoped`): another tenant's
  row is not found, exactly like a row that does not exist.
- It returns models or plain data, or raises a `ServiceError` subclass from `portal.services.errors` (NotFound,
  Conflict, Invalid, Forbidden, Upstream...) whose stable `code` the API returns and the portal turns into words.
- It commits its own transaction, and records an audit event for every change a person or token makes.
- WAHA is reached only through `portal.waha` (via `servers.client_for`); background work is handed over with
  `portal.queue.enqueue` by job path, with ids and primitives only.
"""
