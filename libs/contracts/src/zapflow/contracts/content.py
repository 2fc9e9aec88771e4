"""What an outbound message says: text, media, a template with parameters, or interactive.

``OutboundContent`` is a discriminated union on ``kind``. Limits here are WhatsApp's own where every
provider shares them; provider-specific limits are checked by compliance (veto ``invalid_content``).
In a campaign definition, strings may hold ``{{variable}}`` placeholders that the dispatcher renders
per recipient; a ``send_requested`` always carries rendered content.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from zapflow.contracts.envelope import Contract


class MediaType(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"


class TextContent(Contract):
    """A plain text message."""

    kind: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool = Field(default=False, description="Let the provider render a link preview.")


class MediaContent(Contract):
    """An image, audio, video, document or sticker, by URL, stored key or provider media id."""

    kind: Literal["media"] = "media"
    media_type: MediaType
    url: str | None = Field(default=None, description="URL the provider can fetch.")
    stored_key: str | None = Field(default=None, description="Key in Zapflow's media store.")
    provider_media_id: str | None = Field(default=None, description="Media already uploaded.")
    mime_type: str | None = None
    filename: str | None = None
    caption: str | None = Field(default=None, max_length=1024)
    voice: bool = Field(default=False, description="Send audio as a voice note (PTT).")

    @model_validator(mode="after")
    def _has_source(self) -> Self:
        if self.url is None and self.stored_key is None and self.provider_media_id is None:
            raise ValueError("media needs url, stored_key or provider_media_id")
        return self


class TemplateButtonParameter(Contract):
    """The dynamic part of one template button."""

    index: int = Field(ge=0, le=9, description="Position of the button in the template.")
    sub_type: Literal["quick_reply", "url", "copy_code"]
    value: str = Field(min_length=1)


class TemplateContent(Contract):
    """A provider-approved template (Meta) or a Zapflow-rendered one, with its parameters."""

    kind: Literal["template"] = "template"
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description="e.g. `pt_BR`.")
    header_params: tuple[str, ...] = Field(default=(), description="Positional header texts.")
    header_media: MediaContent | None = None
    body_params: tuple[str, ...] = Field(default=(), description="Positional body values.")
    named_params: dict[str, str] = Field(
        default_factory=dict, description="Named body values, for templates that use names."
    )
    buttons: tuple[TemplateButtonParameter, ...] = ()
    rendered_text: str | None = Field(
        default=None,
        description="The body as the customer sees it: timeline text, and the message itself "
        "for providers without server-side templates.",
    )


class ReplyButton(Contract):
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1)


class ListRow(Contract):
    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1)
    description: str | None = None


class ListSection(Contract):
    title: str | None = None
    rows: tuple[ListRow, ...] = Field(min_length=1)


class InteractiveContent(Contract):
    """Reply buttons (up to 3) or a list of sections the customer picks from."""

    kind: Literal["interactive"] = "interactive"
    style: Literal["buttons", "list"]
    body: str = Field(min_length=1, max_length=1024)
    header: str | None = None
    footer: str | None = None
    buttons: tuple[ReplyButton, ...] = Field(default=(), max_length=3)
    list_button: str | None = Field(default=None, description="Label that opens the list.")
    sections: tuple[ListSection, ...] = Field(default=(), max_length=10)

    @model_validator(mode="after")
    def _fits_style(self) -> Self:
        if self.style == "buttons" and not self.buttons:
            raise ValueError("style 'buttons' needs at least one button")
        if self.style == "list" and (not self.sections or self.list_button is None):
            raise ValueError("style 'list' needs sections and list_button")
        return self


OutboundContent = Annotated[
    TextContent | MediaContent | TemplateContent | InteractiveContent,
    Field(discriminator="kind"),
]
"""Anything Zapflow can send, told apart by ``kind``."""
