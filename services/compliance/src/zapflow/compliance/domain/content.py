"""Content checks (veto ``invalid_content``) and the fingerprint duplicate detection compares.

Limits are WhatsApp Cloud API's: text 4096 characters, media captions 1024 (none on audio and
stickers), interactive body 1024, header and footer 60, button titles 20, list rows 24 with
descriptions of 72 and at most 10 rows. Template parameters must be non-blank and, when the
tenant declared a template's parameter count, match it.
"""

from __future__ import annotations

import hashlib
import json

from zapflow.compliance.domain.model import TenantRules
from zapflow.contracts.content import (
    InteractiveContent,
    MediaContent,
    MediaType,
    OutboundContent,
    TemplateContent,
    TextContent,
)

_NO_CAPTION = (MediaType.AUDIO, MediaType.STICKER)


def content_fingerprint(content: OutboundContent) -> str:
    """A stable hash of what the customer would receive (key order and ids do not matter)."""
    canonical = json.dumps(content.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def content_problem(content: OutboundContent, rules: TenantRules) -> str | None:
    """Why ``content`` cannot be sent, in words for operators; None when it is fine."""
    if isinstance(content, TextContent):
        return _text(content, rules)
    if isinstance(content, MediaContent):
        return _media(content, rules)
    if isinstance(content, TemplateContent):
        return _template(content, rules)
    return _interactive(content)


def _too_long(what: str, value: str | None, limit: int) -> str | None:
    if value is not None and len(value) > limit:
        return f"{what} has {len(value)} characters; the limit is {limit}."
    return None


def _text(content: TextContent, rules: TenantRules) -> str | None:
    if not content.body.strip():
        return "The text message is empty."
    return _too_long("The text", content.body, rules.text_max_chars)


def _media(content: MediaContent, rules: TenantRules) -> str | None:
    if content.caption and content.media_type in _NO_CAPTION:
        return f"A {content.media_type.value} message cannot carry a caption."
    return _too_long("The caption", content.caption, rules.caption_max_chars)


def _template(content: TemplateContent, rules: TenantRules) -> str | None:
    values = (*content.header_params, *content.body_params, *content.named_params.values())
    if any(not v.strip() for v in values):
        return f"Template {content.name!r} has a blank parameter."
    expected = rules.template_params.get(f"{content.name}:{content.language}")
    if expected is None:
        expected = rules.template_params.get(content.name)
    given = len(content.body_params) or len(content.named_params)
    if expected is not None and given != expected:
        return f"Template {content.name!r} expects {expected} body parameters; got {given}."
    return None


def _interactive(content: InteractiveContent) -> str | None:
    if not content.body.strip():
        return "The interactive message has an empty body."
    checks = [
        _too_long("The header", content.header, 60),
        _too_long("The footer", content.footer, 60),
        _too_long("The list button", content.list_button, 20),
        *(_too_long("A button title", b.title, 20) for b in content.buttons),
    ]
    rows = [row for section in content.sections for row in section.rows]
    if len(rows) > 10:
        checks.append(f"The list has {len(rows)} rows; the limit is 10.")
    checks += [_too_long("A list row title", r.title, 24) for r in rows]
    checks += [_too_long("A list row description", r.description, 72) for r in rows]
    return next((problem for problem in checks if problem), None)
