"""The pure core of compliance: rules, state and the decision on one send request.

No I/O, no async, no framework: plain values in, a :class:`Decision` out. ``decide`` is the entry
point; the other modules hold one concept each (content limits, keywords, local time, consent).
"""

from zapflow.compliance.domain.consent import ConsentRecord, effective_consent
from zapflow.compliance.domain.content import content_fingerprint, content_problem
from zapflow.compliance.domain.decide import daily_cap, decide, local_day
from zapflow.compliance.domain.keywords import KeywordMatch, match_keyword, normalize
from zapflow.compliance.domain.model import (
    ChannelState,
    Decision,
    DecisionState,
    Outcome,
    TenantRules,
)

__all__ = [
    "ChannelState",
    "ConsentRecord",
    "Decision",
    "DecisionState",
    "KeywordMatch",
    "Outcome",
    "TenantRules",
    "content_fingerprint",
    "content_problem",
    "daily_cap",
    "decide",
    "effective_consent",
    "local_day",
    "match_keyword",
    "normalize",
]
