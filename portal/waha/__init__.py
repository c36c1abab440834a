"""The portal's only door to WAHA: ``WahaClient`` for one server, ``get_client`` for the process-wide one.

No Flask, no database, no tenants here: callers pass ``WahaSettings`` in.
"""

from portal.waha import errors
from portal.waha.client import SendResult, WahaClient, close_all_clients, get_client
from portal.waha.settings import WahaSettings

__all__ = ["SendResult", "WahaClient", "WahaSettings", "close_all_clients", "errors", "get_client"]
