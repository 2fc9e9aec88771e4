"""Committed JSON Schema snapshots match the models, and no change within v1 is breaking."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from zapflow.contracts import snapshots
from zapflow.contracts.compat import breaking_changes
from zapflow.contracts.registry import REGISTRY
from zapflow.contracts.subjects import SENDING_REQUESTED_V1


def test_snapshot_root_is_the_committed_directory() -> None:
    assert snapshots.SCHEMA_ROOT.parts[-3:] == ("libs", "contracts", "schemas")
    assert snapshots.SCHEMA_ROOT.is_dir()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_model_equals_its_snapshot(name: str) -> None:
    committed = snapshots.load_snapshot(name)
    assert committed is not None, "no snapshot: run python -m zapflow.contracts.snapshots --write"
    assert committed == snapshots.schema_of(REGISTRY[name])


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_model_is_compatible_with_its_snapshot(name: str) -> None:
    committed = snapshots.load_snapshot(name)
    assert committed is not None
    assert breaking_changes(committed, snapshots.schema_of(REGISTRY[name])) == []


def test_every_snapshot_has_a_model_and_is_rendered_stably() -> None:
    assert snapshots.orphans() == []
    files = sorted(snapshots.SCHEMA_ROOT.glob("v*/*.json"))
    assert len(files) == len(REGISTRY)
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert snapshots.render(json.loads(text)) == text, path


def test_check_passes_on_the_committed_tree() -> None:
    assert snapshots.check() == []
    assert snapshots.main(["--check"]) == 0


def test_checker_bites_on_a_real_contract() -> None:
    old = snapshots.load_snapshot(SENDING_REQUESTED_V1)
    assert old is not None
    new = copy.deepcopy(old)
    del new["$defs"]["Recipient"]["properties"]["phone"]
    new["$defs"]["SendRequest"]["required"].append("priority")
    new["$defs"]["TextContent"]["properties"]["body"]["maxLength"] = 100
    assert sorted(breaking_changes(old, new)) == [
        "$.request.content.body: maxLength tightened to 100",
        "$.request.priority: optional field made required",
        "$.request.to.phone: field removed",
    ]


def test_write_then_check_round_trip(tmp_path: Path) -> None:
    assert snapshots.main(["--check", "--root", str(tmp_path)]) == 1
    assert snapshots.main(["--write", "--root", str(tmp_path)]) == 0
    assert snapshots.check(tmp_path) == []
    assert snapshots.write(tmp_path) == []


def test_write_refuses_breaking_changes(tmp_path: Path) -> None:
    snapshots.write(tmp_path)
    path = snapshots.snapshot_path(SENDING_REQUESTED_V1, tmp_path)
    old = json.loads(path.read_text(encoding="utf-8"))
    old["properties"]["legacy"] = {"type": "string"}
    old["required"] = [*old.get("required", []), "legacy"]
    path.write_text(snapshots.render(old), encoding="utf-8")

    problems = snapshots.check(tmp_path)
    assert problems == [
        f"{SENDING_REQUESTED_V1}: snapshot differs, BREAKING: $.legacy: field removed"
    ]
    with pytest.raises(ValueError, match=r"\$\.legacy: field removed"):
        snapshots.write(tmp_path)
    assert snapshots.main(["--write", "--root", str(tmp_path)]) == 1
    assert snapshots.write(tmp_path, allow_breaking=True) == [str(path)]
    assert snapshots.check(tmp_path) == []


def test_additive_drift_and_orphans_are_reported(tmp_path: Path) -> None:
    snapshots.write(tmp_path)
    path = snapshots.snapshot_path(SENDING_REQUESTED_V1, tmp_path)
    old = json.loads(path.read_text(encoding="utf-8"))
    del old["properties"]["causation_id"]
    path.write_text(snapshots.render(old), encoding="utf-8")
    orphan = tmp_path / "v1" / "zf.gone.away.v1.json"
    orphan.write_text("{}\n", encoding="utf-8")

    assert snapshots.check(tmp_path) == [
        f"{SENDING_REQUESTED_V1}: snapshot differs, additive (run --write)",
        f"{orphan}: orphan snapshot, no registered model",
    ]
    snapshots.write(tmp_path)
    assert orphan.exists(), "orphans are never deleted silently"
