"""The compatibility checker rejects every kind of breaking change and accepts additive ones."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, StringConstraints

from zapflow.contracts.compat import breaking_changes


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


class Color(StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Inner(BaseModel):
    code: str
    note: str | None = None


class TextPart(BaseModel):
    kind: Literal["text"] = "text"
    body: str


class ImagePart(BaseModel):
    kind: Literal["image"] = "image"
    url: str


class Base(BaseModel):
    """Version 1 of a contract; every case below changes one thing."""

    type: Literal["zf.t.happened.v1"] = "zf.t.happened.v1"
    name: str
    count: int = 0
    label: str | None = None
    color: Color = Color.RED
    inner: Inner
    items: list[Inner] = []
    tags: dict[str, str] = {}
    part: Annotated[TextPart | ImagePart, Field(discriminator="kind")]
    code: Annotated[str, StringConstraints(max_length=10)] = "x"


BASE = schema(Base)


# --- breaking variants, each paired with the words the report must contain -------------------


class FieldRemoved(BaseModel):
    type: Literal["zf.t.happened.v1"] = "zf.t.happened.v1"
    count: int = 0
    label: str | None = None
    color: Color = Color.RED
    inner: Inner
    items: list[Inner] = []
    tags: dict[str, str] = {}
    part: Annotated[TextPart | ImagePart, Field(discriminator="kind")]
    code: Annotated[str, StringConstraints(max_length=10)] = "x"


class Renamed(FieldRemoved):
    full_name: str


class TypeChanged(Base):
    count: str = "0"  # type: ignore[assignment]


class OptionalMadeRequired(Base):
    label: str | None


class DefaultDropped(Base):
    count: int


class NewRequired(Base):
    region: str


class NullableWidened(Base):
    name: str | None  # type: ignore[assignment]


class ShrunkColor(StrEnum):
    RED = "red"
    GREEN = "green"


class EnumValueRemoved(Base):
    color: ShrunkColor = ShrunkColor.RED  # type: ignore[assignment]


class ConstChanged(Base):
    type: Literal["zf.t.happened.v2"] = "zf.t.happened.v2"  # type: ignore[assignment]


class InnerWithoutNote(BaseModel):
    code: str


class NestedFieldRemoved(Base):
    inner: InnerWithoutNote  # type: ignore[assignment]


class InnerNeedsMore(BaseModel):
    code: str
    note: str | None = None
    level: int


class NestedInListGetsRequiredField(Base):
    items: list[InnerNeedsMore] = []  # type: ignore[assignment]


class UnionVariantRemoved(Base):
    part: TextPart


class MapValueTypeChanged(Base):
    tags: dict[str, int] = {}  # type: ignore[assignment]


class ConstraintTightened(Base):
    code: Annotated[str, StringConstraints(max_length=5)] = "x"


class PatternAdded(Base):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")]


BREAKING: list[tuple[type[BaseModel], tuple[str, ...]]] = [
    (FieldRemoved, ("$.name: field removed",)),
    (Renamed, ("$.name: field removed", "$.full_name: new required field")),
    (TypeChanged, ("$.count: type changed from integer to string",)),
    (OptionalMadeRequired, ("$.label: optional field made required",)),
    (DefaultDropped, ("$.count: optional field made required",)),
    (NewRequired, ("$.region: new required field",)),
    (NullableWidened, ("$.name: type changed: variant null added",)),
    (EnumValueRemoved, ("$.color: enum values removed: ['blue']",)),
    (ConstChanged, ("$.type: const changed from 'zf.t.happened.v1'",)),
    (NestedFieldRemoved, ("$.inner.note: field removed",)),
    (NestedInListGetsRequiredField, ("$.items[*].level: new required field",)),
    (UnionVariantRemoved, ("$.part: type changed: variant object[kind='image'] removed",)),
    (MapValueTypeChanged, ("$.tags{*}: type changed from string to integer",)),
    (ConstraintTightened, ("$.code: maxLength tightened to 5",)),
    (PatternAdded, ("$.name: pattern changed",)),
]


@pytest.mark.parametrize(("variant", "expected"), BREAKING, ids=[m.__name__ for m, _ in BREAKING])
def test_breaking_change_is_reported(variant: type[BaseModel], expected: tuple[str, ...]) -> None:
    problems = breaking_changes(BASE, schema(variant))
    assert len(problems) == len(expected), problems
    for problem, prefix in zip(sorted(problems), sorted(expected), strict=True):
        assert problem.startswith(prefix), problems


# --- additive variants: all allowed within a major version -----------------------------------


class OptionalFieldAdded(Base):
    region: str | None = None


class GrownColor(StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"
    BLACK = "black"


class EnumValueAdded(Base):
    color: GrownColor = GrownColor.RED  # type: ignore[assignment]


class InnerWithMore(BaseModel):
    code: str
    note: str | None = None
    level: int = 0


class NestedOptionalFieldAdded(Base):
    inner: InnerWithMore  # type: ignore[assignment]


class VideoPart(BaseModel):
    kind: Literal["video"] = "video"
    url: str


ThreeParts = Annotated[TextPart | ImagePart | VideoPart, Field(discriminator="kind")]


class UnionObjectVariantAdded(Base):
    part: ThreeParts  # type: ignore[assignment]


class Documented(Base):
    """A new docstring and field descriptions are not contract changes."""

    name: str = Field(description="Now documented.")
    count: int = Field(default=5, description="Another default.")


class RequiredMadeOptional(Base):
    name: str = "anonymous"


class ConstraintRelaxed(Base):
    code: Annotated[str, StringConstraints(max_length=20)] = "x"


@pytest.mark.parametrize(
    "variant",
    [
        Base,
        OptionalFieldAdded,
        EnumValueAdded,
        NestedOptionalFieldAdded,
        UnionObjectVariantAdded,
        Documented,
        RequiredMadeOptional,
        ConstraintRelaxed,
    ],
)
def test_additive_change_is_accepted(variant: type[BaseModel]) -> None:
    assert breaking_changes(BASE, schema(variant)) == []


def test_recursive_models_terminate() -> None:
    class Node(BaseModel):
        name: str
        children: list[Node] = []

    class NodeV2(BaseModel):
        children: list[NodeV2] = []

    assert breaking_changes(schema(Node), schema(Node)) == []
    assert "$.name: field removed" in breaking_changes(schema(Node), schema(NodeV2))


def test_refs_are_resolved_not_compared_by_name() -> None:
    class SameShapeOtherName(BaseModel):
        code: str
        note: str | None = None

    class Outer(BaseModel):
        inner: Inner

    class OuterV2(BaseModel):
        inner: SameShapeOtherName

    assert breaking_changes(schema(Outer), schema(OuterV2)) == []
