"""Splitting one Meta webhook by the business number each change is about.

Meta sends the webhooks of every number of an app to one callback URL, and one POST may batch
changes of several numbers (``entry[].changes[].value.metadata.phone_number_id``). The gateway's
app-level URL stores each number's part as that number's channel's webhook: the same envelope
(``object``, each ``entry`` with its other fields) holding only that number's changes.
"""

from __future__ import annotations

from typing import Any

from zapflow.providers._wire import JsonDict, objs
from zapflow.providers.identity import meta_change_identity

Part = list[tuple[int, JsonDict]]
"""A number's changes, each with the index of the entry it came from."""


def changes_by_number(data: Any) -> dict[str | None, Part]:
    """The changes of a decoded Meta body grouped by ``phone_number_id`` (None: names none)."""
    groups: dict[str | None, Part] = {}
    entries = objs(data.get("entry")) if isinstance(data, dict) else []
    for index, entry in enumerate(entries):
        for change in objs(entry.get("changes")):
            identity = meta_change_identity(change)
            account = identity.account if identity is not None else None
            groups.setdefault(account, []).append((index, change))
    return groups


def envelope_of(data: JsonDict, part: Part) -> JsonDict:
    """The body holding only ``part``'s changes, in their order, under their own entries."""
    entries = objs(data.get("entry"))
    rebuilt: dict[int, JsonDict] = {}
    for index, change in part:
        entry = rebuilt.get(index)
        if entry is None:
            entry = rebuilt[index] = {**entries[index], "changes": []}
        entry["changes"].append(change)
    return {**data, "entry": list(rebuilt.values())}
