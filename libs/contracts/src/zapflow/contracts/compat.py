"""Compatibility check between two JSON Schemas of the same contract version.

``breaking_changes(old, new)`` lists what would break a reader or a replay within a major version:

- a field removed (a rename is a removal plus an addition), or a new required field;
- an optional field made required;
- a type changed, including a scalar type added to a field (``str`` -> ``str | None``): old readers
  would reject the new values;
- enum values removed, a ``const``/``Literal`` changed, a union variant removed;
- a constraint tightened (pattern changed, a bound added or made stricter).

Allowed: new optional fields, new enum values and new object variants of a discriminated union
(consumers must be deployed before producers emit them; note it in the CHANGELOG), and any change
to titles, descriptions or defaults. ``$ref``/``$defs`` are resolved, so nested models are walked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

Schema = Mapping[str, Any]

_LOWER_BOUNDS: Final = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")
_UPPER_BOUNDS: Final = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Human-readable breaking differences from ``old`` to ``new``; empty when compatible."""
    walker = _Walker(old, new)
    walker.compare(old, new, "$")
    return walker.problems


class _Walker:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self._roots = (old_root, new_root)
        self._seen: set[tuple[str, str]] = set()
        self.problems: list[str] = []

    def _report(self, path: str, what: str) -> None:
        self.problems.append(f"{path}: {what}")

    def _resolve(self, node: Schema, root: Schema) -> tuple[Schema, str | None]:
        ref: str | None = None
        while "$ref" in node:
            ref = str(node["$ref"])
            target: Any = root
            for part in ref.removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        if "allOf" in node and len(node["allOf"]) == 1:
            return self._resolve(node["allOf"][0], root)
        return node, ref

    def _variants(self, node: Schema, root: Schema) -> list[tuple[Schema, str | None]]:
        resolved, ref = self._resolve(node, root)
        options = resolved.get("anyOf") or resolved.get("oneOf")
        if not options:
            return [(resolved, ref)]
        return [v for option in options for v in self._variants(option, root)]

    def compare(self, old: Schema, new: Schema, path: str) -> None:
        old_variants = self._variants(old, self._roots[0])
        new_variants = self._variants(new, self._roots[1])
        if len(old_variants) == 1 and len(new_variants) == 1:
            self._compare_one(old_variants[0], new_variants[0], path)
            return
        new_by_key = dict(zip(_variant_keys(new_variants), new_variants, strict=True))
        old_keys = _variant_keys(old_variants)
        for key, variant in zip(old_keys, old_variants, strict=True):
            if key not in new_by_key:
                self._report(path, f"type changed: variant {key} removed")
            else:
                self._compare_one(variant, new_by_key[key], path)
        for key in sorted(new_by_key.keys() - set(old_keys)):
            if not key.startswith("object"):
                self._report(path, f"type changed: variant {key} added")

    def _compare_one(
        self, old: tuple[Schema, str | None], new: tuple[Schema, str | None], path: str
    ) -> None:
        (o, old_ref), (n, new_ref) = old, new
        if old_ref is not None and new_ref is not None:
            if (old_ref, new_ref) in self._seen:
                return
            self._seen.add((old_ref, new_ref))
        if _kind(o) != _kind(n):
            self._report(path, f"type changed from {_kind(o)} to {_kind(n)}")
            return
        self._compare_values(o, n, path)
        self._compare_constraints(o, n, path)
        if "properties" in o or "properties" in n:
            self._compare_objects(o, n, path)
        if isinstance(o.get("additionalProperties"), Mapping) and isinstance(
            n.get("additionalProperties"), Mapping
        ):
            self._compare_schema_at(
                o["additionalProperties"], n["additionalProperties"], path, "{*}"
            )
        if isinstance(o.get("items"), Mapping) and isinstance(n.get("items"), Mapping):
            self._compare_schema_at(o["items"], n["items"], path, "[*]")
        old_prefix, new_prefix = o.get("prefixItems", []), n.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            self._report(path, "type changed: tuple length changed")
        for i, (a, b) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            self._compare_schema_at(a, b, path, f"[{i}]")

    def _compare_schema_at(self, old: Schema, new: Schema, path: str, step: str) -> None:
        self.compare(old, new, f"{path}{step}")

    def _compare_values(self, o: Schema, n: Schema, path: str) -> None:
        if "const" in o:
            allowed = [n["const"]] if "const" in n else n.get("enum")
            if allowed is None or o["const"] not in allowed:
                self._report(path, f"const changed from {o['const']!r}")
        elif "const" in n:
            self._report(path, f"const {n['const']!r} added")
        if "enum" in o and "enum" in n:
            removed = [v for v in o["enum"] if v not in n["enum"]]
            if removed:
                self._report(path, f"enum values removed: {removed!r}")
        elif "enum" in n and "const" not in o:
            self._report(path, "enum added to a free field")

    def _compare_constraints(self, o: Schema, n: Schema, path: str) -> None:
        if o.get("pattern") != n.get("pattern") and "pattern" in n:
            self._report(path, f"pattern changed to {n['pattern']!r}")
        if o.get("format") != n.get("format") and "format" in n:
            self._report(path, f"format changed to {n['format']!r}")
        for key in _LOWER_BOUNDS:
            if key in n and (key not in o or n[key] > o[key]):
                self._report(path, f"{key} tightened to {n[key]!r}")
        for key in _UPPER_BOUNDS:
            if key in n and (key not in o or n[key] < o[key]):
                self._report(path, f"{key} tightened to {n[key]!r}")

    def _compare_objects(self, o: Schema, n: Schema, path: str) -> None:
        old_props: Mapping[str, Schema] = o.get("properties", {})
        new_props: Mapping[str, Schema] = n.get("properties", {})
        old_required, new_required = set(o.get("required", ())), set(n.get("required", ()))
        for name, schema in old_props.items():
            if name not in new_props:
                self._report(f"{path}.{name}", "field removed")
                continue
            if name in new_required and name not in old_required:
                self._report(f"{path}.{name}", "optional field made required")
            self.compare(schema, new_props[name], f"{path}.{name}")
        for name in new_props.keys() - old_props.keys():
            if name in new_required:
                self._report(f"{path}.{name}", "new required field")


_JSON_TYPES: Final = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "NoneType": "null",
}


def _kind(node: Schema) -> str:
    """The JSON type of a (non-union) schema node; ``any`` when it does not say."""
    declared = node.get("type")
    if isinstance(declared, list):
        return "|".join(sorted(str(t) for t in declared))
    if declared is not None:
        return str(declared)
    if "properties" in node:
        return "object"
    if "const" in node or "enum" in node:
        values = [node["const"]] if "const" in node else list(node["enum"])
        names = {_JSON_TYPES.get(type(v).__name__, type(v).__name__) for v in values}
        return "|".join(sorted(names))
    return "any"


def _variant_keys(variants: list[tuple[Schema, str | None]]) -> list[str]:
    """Identity of each union variant, to pair old and new variants.

    Scalars by JSON type; objects by a discriminating ``const`` property (``kind``, ``type``), else
    as ``object`` when a union has one such variant, else by model name.
    """
    keys = [_variant_key(node) for node, _ in variants]
    return [
        f"object[{(ref or '?').rsplit('/', 1)[-1]}]" if keys.count(key) > 1 else key
        for key, (_, ref) in zip(keys, variants, strict=True)
    ]


def _variant_key(node: Schema) -> str:
    kind = _kind(node)
    if kind != "object":
        return kind
    for name, prop in sorted(node.get("properties", {}).items()):
        if isinstance(prop, Mapping) and "const" in prop:
            return f"object[{name}={prop['const']!r}]"
    return "object"
