"""NATS identities of a test session: every nats-server the tests start enforces them.

Unless ``$NATS_URL`` names an existing server, the plugin generates one NKey seed per service
and one for ``admin`` at session start (:func:`session_identities`) and exports them the way
deployments pass them (``ZF_<SERVICE>_NATS_NKEY_SEED``, ``NATS_NKEY_SEED`` for tooling): services
built from their settings, services run as child processes and the ``zapflow`` CLI all connect
as themselves, with the permissions ``zapflow.contracts.access`` gives them. Tests connect as
``admin`` (:func:`connect`), and servers a test starts itself take :func:`nats_config`.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from nats.aio.client import Client
from pydantic import SecretStr

from zapflow.runtime.broker import connect_tooling
from zapflow.runtime.natsauth import Identities

_IDENTITIES: Identities | None = None


def session_identities() -> Identities:
    """This session's identities (generated on first use)."""
    global _IDENTITIES
    if _IDENTITIES is None:
        _IDENTITIES = Identities.generate()
    return _IDENTITIES


def export(env: MutableMapping[str, str]) -> None:
    """Put every identity's seed into ``env`` (the process environment, for the session)."""
    env.update(session_identities().environment())


def nats_config() -> str:
    """The ``authorization`` configuration for a nats-server a test starts itself."""
    return session_identities().authorization_config()


def seed(identity: str) -> str:
    """The seed of ``identity`` (a service name or ``admin``)."""
    return session_identities().seed(identity)


def own_durables_seed() -> SecretStr | None:
    """The seed for a service a test runs with consumers of the test's own (unique durable
    names on the shared server): only ``admin`` may create those, a service's own identity may
    create only the durables its contracts declare. None when the session exported no seeds."""
    return SecretStr(seed("admin")) if exported() else None


async def connect(url: str, **kwargs: Any) -> Client:
    """A connection as ``admin`` (unrestricted), as test code and tooling use."""
    kwargs.setdefault("name", "zapflow-test")
    name = kwargs.pop("name")
    return await connect_tooling(url, name, **kwargs)


def exported() -> bool:
    """True when this session's seeds are in the environment."""
    return os.environ.get("NATS_NKEY_SEED") == session_identities().seed("admin")
