"""Receiving identities and the comparison with a channel's registered account or number."""

from __future__ import annotations

from zapflow.providers.identity import (
    ReceivingIdentity,
    foreign_identities,
    receiving_identities,
)

NUMBER = ReceivingIdentity(account="109876543210987", phone="+5511999990000")
OTHER = ReceivingIdentity(account="200000000000009", phone="+5511999990009")


def test_account_decides_when_the_channel_has_one() -> None:
    assert foreign_identities([NUMBER, OTHER], account="109876543210987", phone=None) == [OTHER]
    # the phone is not compared when the account is known
    assert foreign_identities([NUMBER], account="109876543210987", phone="+5511000000000") == []


def test_phone_decides_without_an_account_ninth_digit_included() -> None:
    assert foreign_identities([NUMBER, OTHER], account=None, phone="551199990000") == [OTHER]


def test_nothing_is_foreign_without_a_registered_identity_or_a_named_one() -> None:
    assert foreign_identities([OTHER], account=None, phone=None) == []
    assert foreign_identities([ReceivingIdentity()], account="x", phone=None) == []


def test_wuzapi_matches_user_id_or_instance_name() -> None:
    user = ReceivingIdentity(account="4f7d", name="atendimento-01")
    assert foreign_identities([user], account="atendimento-01", phone=None) == []
    assert foreign_identities([user], account="4f7d", phone=None) == []
    assert foreign_identities([user], account="vendas", phone=None) == [user]


def test_readers_never_raise_on_odd_shapes() -> None:
    for provider in ("meta", "evolution", "zapi", "wuzapi", "telegram"):
        for data in (None, [], "x", {"entry": "x"}, {"entry": [{"changes": [1, None]}]}):
            assert receiving_identities(provider, data) == ()
    assert receiving_identities("evolution", {"instance": 12}) == (ReceivingIdentity("12"),)
