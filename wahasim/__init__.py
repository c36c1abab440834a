"""wahasim: a stand-alone fake WAHA (WhatsApp HTTP API) server for development and tests."""

from .app import create_app
from .settings import Settings
from .simulator import Simulator

__all__ = ["create_app", "Settings", "Simulator"]
