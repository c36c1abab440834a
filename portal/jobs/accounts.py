"""Account mails sent in the background, so the page answers in the same time whoever asks."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import accounts

log = logging.getLogger(__name__)


@job
def send_password_reset(user_id: int) -> None:
    """Mail a password reset link to one user."""
    if not accounts.send_password_reset(user_id):
        log.info("no reset mail for user %s: account gone or disabled", user_id)
