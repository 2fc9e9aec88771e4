"""NATS identities: one NKey user per service (plus ``admin`` for operator tooling), and the
nats-server ``authorization`` block that gives each the permissions of
``zapflow.contracts.access``.

An NKey is an Ed25519 key pair: the server's configuration holds only the public keys (nothing
secret), each service holds its own seed (``ZF_<SERVICE>_NATS_NKEY_SEED`` or ``…_SEED_FILE``)
and proves it by signing the server's nonce when it connects. ``zapflow up`` and the test
harness generate the seeds (:class:`Identities`); in Kubernetes they come from Secrets and the
server configuration refers to the public keys through environment variables
(:func:`authorization_config` with ``env_refs=True``, checked in as
``deploy/k8s/base/nats/auth.conf``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import nkeys

from zapflow.contracts.access import ADMIN, permissions_for
from zapflow.contracts.types import SERVICES

IDENTITIES: Final[tuple[str, ...]] = (*SERVICES, ADMIN)
"""Every identity the system uses: the six services and ``admin``."""

ADMIN_SEED_ENV: Final = "NATS_NKEY_SEED"
"""The seed operator tooling (the ``zapflow`` CLI, benchmarks, tests) connects with."""
ADMIN_SEED_FILE_ENV: Final = "NATS_NKEY_SEED_FILE"


def admin_seed() -> str | None:
    """The operator tooling's seed: ``NATS_NKEY_SEED``, else the file ``NATS_NKEY_SEED_FILE``
    names, else None (connect anonymously)."""
    if seed := os.environ.get(ADMIN_SEED_ENV, "").strip():
        return seed
    if path := os.environ.get(ADMIN_SEED_FILE_ENV, "").strip():
        return Path(path).read_text().strip()
    return None


def seed_env(identity: str) -> str:
    """Environment variable holding ``identity``'s seed (``ZF_SENDER_NATS_NKEY_SEED``)."""
    return ADMIN_SEED_ENV if identity == ADMIN else f"ZF_{identity.upper()}_NATS_NKEY_SEED"


def public_key_env(identity: str) -> str:
    """Environment variable the server configuration reads a public key from."""
    return f"ZF_{identity.upper()}_NATS_NKEY"


def new_seed() -> str:
    """A fresh user NKey seed (``SU…``)."""
    seed: bytes = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode()


def public_key(seed: str) -> str:
    """The public key (``U…``) of a user seed; raises ``ValueError`` for a malformed seed."""
    try:
        key = nkeys.from_seed(bytearray(seed.strip().encode()))
    except nkeys.NkeysError as exc:
        raise ValueError("not an NKey seed") from exc
    public: str = key.public_key.decode()
    key.wipe()
    return public


@dataclass(frozen=True)
class Identities:
    """Seeds of every identity; ``load_or_create`` keeps them in a folder (mode 0700/0600)."""

    seeds: Mapping[str, str]

    @classmethod
    def generate(cls, names: Iterable[str] = IDENTITIES) -> Identities:
        return cls({name: new_seed() for name in names})

    @classmethod
    def load_or_create(cls, folder: Path, names: Iterable[str] = IDENTITIES) -> Identities:
        """Read ``<folder>/<name>.nk``, creating the seeds that are missing."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        seeds = {}
        for name in names:
            path = folder / f"{name}.nk"
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(new_seed() + "\n")
            seeds[name] = path.read_text().strip()
        return cls(seeds)

    def seed(self, name: str) -> str:
        return self.seeds[name]

    def public_keys(self) -> dict[str, str]:
        return {name: public_key(seed) for name, seed in self.seeds.items()}

    def environment(self) -> dict[str, str]:
        """Each identity's seed under its :func:`seed_env` name (for child processes)."""
        return {seed_env(name): seed for name, seed in self.seeds.items()}

    def authorization_config(self) -> str:
        return authorization_config(self.public_keys())


def _user(identity: str, nkey: str) -> str:
    if identity == ADMIN:
        return f"    {{ # {identity}\n      nkey: {nkey}\n    }}"
    perms = permissions_for(identity)  # type: ignore[arg-type]
    publish = json.dumps(list(perms.publish), indent=None)
    subscribe = json.dumps(list(perms.subscribe), indent=None)
    lines = [
        f"    {{ # {identity}",
        f"      nkey: {nkey}",
        "      permissions: {",
        f"        publish: {{ allow: {publish} }}",
        f"        subscribe: {{ allow: {subscribe} }}",
    ]
    if perms.allow_responses:
        lines.append("        allow_responses: true")
    lines += ["      }", "    }"]
    return "\n".join(lines)


def authorization_config(public_keys: Mapping[str, str] | None = None) -> str:
    """The ``authorization`` block of nats-server's configuration.

    ``public_keys`` maps identity → public key; None refers to each key through the environment
    variable :func:`public_key_env` instead (for a configuration checked in beside manifests).
    """
    users = []
    for identity in IDENTITIES:
        if public_keys is None:
            nkey = f"${public_key_env(identity)}"
        elif identity in public_keys:
            nkey = json.dumps(public_keys[identity])
        else:
            continue
        users.append(_user(identity, nkey))
    header = (
        "# Generated from zapflow.contracts.access by zapflow.runtime.natsauth: do not edit.\n"
        "# One NKey user per service, with the subjects its contracts name; admin is for\n"
        "# operator tooling.\n"
    )
    return header + "authorization {\n  users: [\n" + ",\n".join(users) + "\n  ]\n}\n"
