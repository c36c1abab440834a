"""Outbound network access to addresses a tenant (or an operator) names: the destination policy (`policy`) and the
one hardened HTTP client that connects only to the addresses the policy checked (`http`).

Nothing here knows Flask, tenants or the database; callers pass `allow_private` from WEBHOOK_ALLOW_PRIVATE.
"""
