"""Outgoing mail through one small backend: logged in development, kept in memory in tests, SMTP in production."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlparse

from flask import current_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


# Tests read what was sent from here (only filled when TESTING is on).
outbox: list[Mail] = []


def send_mail(to: str, subject: str, body: str) -> None:
    """Send one plain-text mail with the configured backend."""
    mail = Mail(to=to, subject=subject, body=body)
    cfg = current_app.config
    if cfg.get("TESTING"):
        outbox.append(mail)
        return
    if cfg["MAIL_BACKEND"] == "log":
        # Development only: the body may hold a sign-in link, which is the point of logging it here.
        # (the log filter keeps links in this line only; production refuses MAIL_BACKEND=log).
        log.warning("mail to %s: %s\n%s", to, subject, body, extra={"portal_mail_link": True})
        return
    url = urlparse(cfg["SMTP_URL"])
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = cfg["MAIL_FROM"], to, subject
    message.set_content(body)
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    with smtp_class(
        url.hostname or "localhost", url.port or (465 if url.scheme == "smtps" else 587), timeout=10
    ) as smtp:
        if url.scheme == "smtp":
            smtp.starttls()
        if url.username:
            smtp.login(url.username, url.password or "")
        smtp.send_message(message)
    log.info("mail sent to %s: %s", to, subject)
