"""Content validation (veto ``invalid_content``) and fingerprints."""

from __future__ import annotations

import pytest

from zapflow.compliance.domain import TenantRules, content_fingerprint, content_problem
from zapflow.contracts.content import (
    InteractiveContent,
    ListRow,
    ListSection,
    MediaContent,
    MediaType,
    OutboundContent,
    ReplyButton,
    TemplateContent,
    TextContent,
)

RULES = TenantRules(template_params={"promo": 2, "promo:en_US": 1})


def image(caption: str | None, media_type: MediaType = MediaType.IMAGE) -> MediaContent:
    return MediaContent(media_type=media_type, url="https://cdn.example/x", caption=caption)


def template(name: str = "promo", language: str = "pt_BR", *params: str) -> TemplateContent:
    return TemplateContent(name=name, language=language, body_params=params)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (TextContent(body=" \t\n"), "empty"),
        # the contract already refuses it; the domain does not rely on that
        (image("x").model_copy(update={"caption": "x" * 1025}), "1025 characters"),
        (TextContent.model_construct(body="x" * 4097), "4097 characters"),
        (image("hi", MediaType.AUDIO), "cannot carry a caption"),
        (image("hi", MediaType.STICKER), "cannot carry a caption"),
        (template("promo", "pt_BR", "Ana"), "expects 2 body parameters; got 1"),
        (template("promo", "en_US", "Ana", "Bia"), "expects 1 body parameters; got 2"),
        (template("other", "pt_BR", "Ana", " "), "blank parameter"),
        (
            InteractiveContent(
                style="buttons", body="Escolha", buttons=(ReplyButton(id="a", title="x" * 21),)
            ),
            "button title",
        ),
        (
            InteractiveContent(
                style="list",
                body="Escolha",
                list_button="Ver",
                sections=(
                    ListSection(rows=tuple(ListRow(id=str(i), title=f"r{i}") for i in range(11))),
                ),
            ),
            "11 rows",
        ),
        (
            InteractiveContent(
                style="buttons", body=" ", buttons=(ReplyButton(id="a", title="Ok"),)
            ),
            "empty body",
        ),
    ],
)
def test_invalid_content_is_explained(content: OutboundContent, problem: str) -> None:
    found = content_problem(content, RULES)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    "content",
    [
        TextContent(body="Olá"),
        TextContent(body="x" * 4096),
        image("x" * 1024),
        image(None, MediaType.AUDIO),
        template("promo", "pt_BR", "Ana", "Bia"),
        template("unknown", "pt_BR"),  # count unknown: not checked
        TemplateContent(name="promo", language="pt_BR", named_params={"a": "1", "b": "2"}),
    ],
)
def test_valid_content_passes(content: OutboundContent) -> None:
    assert content_problem(content, RULES) is None


def test_tenants_may_lower_the_length_limits() -> None:
    rules = TenantRules(text_max_chars=10, caption_max_chars=5)
    assert content_problem(TextContent(body="x" * 11), rules) is not None
    assert content_problem(image("123456"), rules) is not None


def test_fingerprints_compare_what_the_customer_sees() -> None:
    a = TextContent(body="Promo de hoje")
    assert content_fingerprint(a) == content_fingerprint(TextContent(body="Promo de hoje"))
    assert content_fingerprint(a) != content_fingerprint(TextContent(body="Promo de amanhã"))
    named = TemplateContent(name="p", language="pt_BR", named_params={"a": "1", "b": "2"})
    swapped = TemplateContent(name="p", language="pt_BR", named_params={"b": "2", "a": "1"})
    assert content_fingerprint(named) == content_fingerprint(swapped)
