"""A job for the worker benchmark's baseline: what one RQ job per webhook event would cost."""

from portal.jobs import job
from portal.services import events


@job
def one_event() -> None:
    """Process at most one pending event."""
    events.process_batch(1)
