"""Account mails sent in the background, so the page answers in the same time whoever asks; upkeep of the
signed-in browsers."""

from __future__ import annotations

import logging

from portal.jobs import job
from portal.services import accounts, browser_sessions

log = logging.getLogger(__name__)


@job
def send_password_reset(user_id: int) -> None:
    """Mail a password reset link to one user."""
    if not accounts.send_password_reset(user_id):
        log.info("no reset mail for user %s: account gone or disabled", user_id)


@job
def prune_browser_sessions() -> int:
    """Delete browser sessions that ended a while ago."""
    count = browser_sessions.prune()
    if count:
        log.info("deleted %s ended browser sessions", count)
    return count
