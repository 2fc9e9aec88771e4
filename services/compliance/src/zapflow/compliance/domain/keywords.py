"""Opt-out / opt-in keywords: a whole inbound message, compared case- and accent-insensitively."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from zapflow.compliance.domain.model import TenantRules
from zapflow.contracts.compliance.v1 import ConsentState

_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = ".,;:!?¡¿\"'()[]*_~-"


def normalize(text: str) -> str:
    """Fold case and accents, trim spaces and edge punctuation.

    ``" Não  quero! "`` becomes ``"nao quero"``.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", bare.casefold()).strip().strip(_EDGE_PUNCTUATION).strip()


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    state: ConsentState
    keyword: str
    """The configured keyword that matched, as configured."""


def match_keyword(text: str | None, rules: TenantRules) -> KeywordMatch | None:
    """The consent change a message asks for, when the whole message is a configured keyword."""
    if not text:
        return None
    said = normalize(text)
    if not said:
        return None
    for state, keywords in (
        (ConsentState.OPTED_OUT, rules.opt_out_keywords),
        (ConsentState.OPTED_IN, rules.opt_in_keywords),
    ):
        for keyword in keywords:
            if normalize(keyword) == said:
                return KeywordMatch(state, keyword)
    return None
