"""DTOs of the actions on messages: react, edit, forward (delete takes no body)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from portal.api.schemas.common import MAX_TEXT, NOT_BLANK, Request, check_recipient, recipient_field, string_rule
from portal.services.errors import Invalid
from portal.services.messages.actions import EMOJI_MAX, EMOJI_PATTERN, clean_emoji


class ReactionDto(Request):
    """Your reaction to a message."""

    emoji: str = Field(
        max_length=EMOJI_MAX,
        description="One emoji (it may be a sequence, e.g. with a skin tone); an empty string removes your reaction.",
        examples=["👍"],
        # the pattern is the shape; the format `emoji` says the rest: one emoji of Unicode's list, or ""
        json_schema_extra=string_rule(pattern=EMOJI_PATTERN, format="emoji"),
    )

    @field_validator("emoji")
    @classmethod
    def _one_emoji(cls, value: str) -> str:
        try:
            return clean_emoji(value)
        except Invalid:
            raise PydanticCustomError("emoji", "Give one emoji, or an empty string to remove your reaction.") from None


class EditMessageDto(Request):
    """The new text of a message you sent."""

    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT,
        examples=["Your order ships tomorrow (not today, sorry)."],
        pattern=NOT_BLANK,
        description="Replaces the text (not only spaces: leading and trailing spaces are dropped).",
    )


class ForwardMessageDto(Request):
    """Where to forward a message."""

    sessionId: str = Field(
        min_length=1,
        max_length=36,
        description="The session that has the message (WhatsApp forwards from the account's own messages).",
    )
    to: str = recipient_field()

    @field_validator("to")
    @classmethod
    def _recipient(cls, value: str) -> str:
        return check_recipient(value)
