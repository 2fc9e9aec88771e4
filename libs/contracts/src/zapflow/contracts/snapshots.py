"""JSON Schema snapshots of every registered contract, committed under ``libs/contracts/schemas``.

One file per type, ``schemas/<major>/<type>.json`` (``schemas/v1/zf.messages.received.v1.json``),
generated from ``model_json_schema()`` with sorted keys and a trailing newline, so every
contract change shows up as a reviewable diff.

    python -m zapflow.contracts.snapshots --check   # default: fail if a snapshot is stale/missing
    python -m zapflow.contracts.snapshots --write   # regenerate; refuses breaking changes

``--write`` refuses to overwrite a snapshot with a breaking change (``zapflow.contracts.compat``):
make a new major version instead, or pass ``--allow-breaking`` for a version that never shipped.
Orphan snapshots (no model) are reported, never deleted silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from zapflow.contracts.compat import breaking_changes
from zapflow.contracts.envelope import Event
from zapflow.contracts.registry import REGISTRY

SCHEMA_ROOT: Final = Path(__file__).resolve().parents[3] / "schemas"
"""``libs/contracts/schemas`` of the source tree (the package is installed editable)."""


def schema_of(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema a consumer validates against (pydantic validation mode)."""
    return model.model_json_schema(mode="validation")


def render(schema: dict[str, Any]) -> str:
    """Stable text of a schema: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def snapshot_path(type_name: str, root: Path = SCHEMA_ROOT) -> Path:
    """Where the snapshot of ``type_name`` lives: ``<root>/<major>/<type>.json``."""
    major = type_name.rsplit(".", 1)[-1]
    return root / major / f"{type_name}.json"


def load_snapshot(type_name: str, root: Path = SCHEMA_ROOT) -> dict[str, Any] | None:
    """The committed schema of ``type_name``, or None if there is none."""
    path = snapshot_path(type_name, root)
    if not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def orphans(root: Path = SCHEMA_ROOT) -> list[Path]:
    """Snapshot files that no registered model produces."""
    known = {snapshot_path(type_name, root) for type_name in REGISTRY}
    return sorted(path for path in root.glob("v*/*.json") if path not in known)


def check(root: Path = SCHEMA_ROOT) -> list[str]:
    """Every difference between the models and the committed snapshots; empty when in sync."""
    problems: list[str] = []
    for type_name, model in sorted(REGISTRY.items()):
        schema = schema_of(model)
        committed = load_snapshot(type_name, root)
        if committed is None:
            problems.append(f"{type_name}: no snapshot (run --write)")
        elif render(committed) != render(schema):
            breaking = breaking_changes(committed, schema)
            kind = "BREAKING: " + "; ".join(breaking) if breaking else "additive (run --write)"
            problems.append(f"{type_name}: snapshot differs, {kind}")
    problems.extend(f"{path}: orphan snapshot, no registered model" for path in orphans(root))
    return problems


def write(root: Path = SCHEMA_ROOT, *, allow_breaking: bool = False) -> list[str]:
    """Write every snapshot that changed; returns what was written, or refuses breaking changes.

    Raises ``ValueError`` listing the breaking changes unless ``allow_breaking``.
    """
    pending: list[tuple[Path, str]] = []
    refused: list[str] = []
    for type_name, model in sorted(REGISTRY.items()):
        schema = schema_of(model)
        committed = load_snapshot(type_name, root)
        if committed is not None and render(committed) == render(schema):
            continue
        if committed is not None and not allow_breaking:
            refused.extend(f"{type_name}: {p}" for p in breaking_changes(committed, schema))
        pending.append((snapshot_path(type_name, root), render(schema)))
    if refused:
        raise ValueError("breaking changes within a major version:\n" + "\n".join(refused))
    for path, text in pending:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return [str(path) for path, _ in pending]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--check`` (default) or ``--write [--allow-breaking]``; returns exit code."""
    parser = argparse.ArgumentParser(prog="python -m zapflow.contracts.snapshots")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail on any difference (default)")
    mode.add_argument("--write", action="store_true", help="regenerate changed snapshots")
    parser.add_argument("--allow-breaking", action="store_true", help="with --write only")
    parser.add_argument("--root", type=Path, default=SCHEMA_ROOT, help="schemas directory")
    args = parser.parse_args(argv)
    if args.write:
        try:
            written = write(args.root, allow_breaking=args.allow_breaking)
        except ValueError as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        sys.stdout.write("".join(f"wrote {path}\n" for path in written) or "up to date\n")
        return 0
    problems = check(args.root)
    sys.stderr.write("".join(f"{problem}\n" for problem in problems))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
