"""Which business channel a webhook names: its *receiving identity*, read from the decoded body.

Every provider says in the payload which of the business's numbers or instances received it:

============  ===========================================  ====================================
provider      ``account`` (what a channel registers)       also read
============  ===========================================  ====================================
meta          ``value.metadata.phone_number_id`` per change ``display_phone_number`` (``phone``)
evolution     envelope ``instance`` (instance name)        ``sender`` owner JID (``phone``)
zapi          ``instanceId``                               ``connectedPhone`` (``phone``)
wuzapi        ``userID``                                   ``instanceName`` (``name``)
============  ===========================================  ====================================

A Meta body may batch several numbers of one app (one identity per distinct
``phone_number_id``); the other providers name one. The functions here take the body already
decoded (the gateway decodes it once for its envelope check) and never raise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from zapflow.providers._wire import JsonDict, ident, nonempty, obj, objs
from zapflow.providers.phones import normalize_phone


@dataclass(frozen=True, slots=True)
class ReceivingIdentity:
    """The business side of a webhook: the number or instance that received it.

    ``account`` is what a channel registers as its provider account (Meta ``phone_number_id``,
    Evolution instance name, Z-API instance id, WuzAPI user id); ``phone`` the business number
    in E.164 when the payload names it; ``name`` a second name the channel may register instead
    (WuzAPI ``instanceName``).
    """

    account: str | None = None
    phone: str | None = None
    name: str | None = None

    def names_account(self, account: str) -> bool:
        """True when ``account`` is this identity's account (or its second name)."""
        return account in (self.account, self.name)

    def as_dict(self) -> dict[str, str | None]:
        return {"account": self.account, "phone": self.phone, "name": self.name}


def _one(*, account: Any = None, phone: Any = None, name: Any = None) -> ReceivingIdentity | None:
    identity = ReceivingIdentity(
        account=ident(account),
        phone=normalize_phone(nonempty(phone)),
        name=nonempty(name),
    )
    return identity if identity != ReceivingIdentity() else None


def _unique(found: Iterable[ReceivingIdentity | None]) -> tuple[ReceivingIdentity, ...]:
    return tuple(dict.fromkeys(i for i in found if i is not None))


def meta_change_identity(change: JsonDict) -> ReceivingIdentity | None:
    """The number one Meta ``entry[].changes[]`` item is about (None when it names none)."""
    metadata = obj(obj(change.get("value")).get("metadata"))
    return _one(account=metadata.get("phone_number_id"), phone=metadata.get("display_phone_number"))


def _meta(data: JsonDict) -> tuple[ReceivingIdentity, ...]:
    changes = (c for entry in objs(data.get("entry")) for c in objs(entry.get("changes")))
    return _unique(meta_change_identity(c) for c in changes)


def _evolution(data: JsonDict) -> tuple[ReceivingIdentity, ...]:
    return _unique([_one(account=data.get("instance"), phone=data.get("sender"))])


def _zapi(data: JsonDict) -> tuple[ReceivingIdentity, ...]:
    return _unique([_one(account=data.get("instanceId"), phone=data.get("connectedPhone"))])


def _wuzapi(data: JsonDict) -> tuple[ReceivingIdentity, ...]:
    return _unique([_one(account=data.get("userID"), name=data.get("instanceName"))])


_READERS: Final[dict[str, Callable[[JsonDict], tuple[ReceivingIdentity, ...]]]] = {
    "meta": _meta,
    "evolution": _evolution,
    "zapi": _zapi,
    "wuzapi": _wuzapi,
}


def receiving_identities(provider: str, data: Any) -> tuple[ReceivingIdentity, ...]:
    """Every receiving identity a decoded webhook body names, in order, without repeats.

    For WuzAPI pass the event map (the form's ``jsonData`` with ``userID``/``instanceName``).
    An unknown provider or a body that is not an object names none.
    """
    reader = _READERS.get(provider)
    if reader is None or not isinstance(data, dict):
        return ()
    return reader(data)


def foreign_identities(
    identities: Iterable[ReceivingIdentity], *, account: str | None, phone: str | None
) -> list[ReceivingIdentity]:
    """The identities that are not the channel's.

    A channel with a registered ``account`` is compared by account (the strong id); without one,
    by business ``phone`` (E.164, Brazil's ninth digit normalized); with neither, nothing is
    foreign. An identity that names no account (or no phone, when comparing phones) is not
    foreign: the payload does not say.
    """
    if account:
        return [i for i in identities if (i.account or i.name) and not i.names_account(account)]
    own = normalize_phone(phone)
    if own:
        return [i for i in identities if i.phone is not None and i.phone != own]
    return []
