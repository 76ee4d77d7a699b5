"""Rules the consumers apply beyond field types, written into the events' JSON Schema.

Pydantic validators enforce them; these put the same rules in docs/asyncapi.json, so a
producer that reads only the document knows them: conditional requirements as JSON Schema
`if`/`then`/`else`, and an origin's id naming another field of the same message as the
vendor keyword `x-same-as`, and one time after another as `x-after` (JSON Schema cannot
compare two fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JsonSchemaExtra = Callable[[dict[str, Any], type[Any]], None]


def _add(schema: dict[str, Any], rule: dict[str, Any]) -> None:
    schema.setdefault("allOf", []).append(rule)


def conditional(
    when: dict[str, Any], then: dict[str, Any], *, otherwise: dict[str, Any] | None = None
) -> JsonSchemaExtra:
    rule: dict[str, Any] = {"if": when, "then": then}
    if otherwise is not None:
        rule["else"] = otherwise

    def extra(schema: dict[str, Any], _: type[Any]) -> None:
        _add(schema, rule)

    return extra


def origin_rule(kind: str, same_as: str) -> JsonSchemaExtra:
    """origin.kind is `kind` and origin.id is the value of field `same_as`, as text."""

    def extra(schema: dict[str, Any], _: type[Any]) -> None:
        _add(
            schema,
            {
                "properties": {
                    "origin": {
                        "properties": {
                            "kind": {"const": kind},
                            "id": {
                                "x-same-as": same_as,
                                "description": f"equals {same_as}",
                            },
                        }
                    }
                }
            },
        )

    return extra


def later_than(field: str, earlier: str) -> JsonSchemaExtra:
    """`field`, when given with `earlier`, is after it (the vendor keyword `x-after`)."""

    def extra(schema: dict[str, Any], _: type[Any]) -> None:
        _add(
            schema,
            {"properties": {field: {"x-after": earlier, "description": f"after {earlier}"}}},
        )

    return extra


def every(*rules: JsonSchemaExtra) -> JsonSchemaExtra:
    def extra(schema: dict[str, Any], model: type[Any]) -> None:
        for rule in rules:
            rule(schema, model)

    return extra


def exactly_one_of(*fields: str) -> JsonSchemaExtra:
    """Exactly one of the fields is given (present and not null)."""
    options = [{"required": [f], "properties": {f: {"not": {"type": "null"}}}} for f in fields]

    def extra(schema: dict[str, Any], _: type[Any]) -> None:
        _add(schema, {"oneOf": options})

    return extra


def together(*fields: str) -> JsonSchemaExtra:
    """All of the fields, or none of them (absent or null)."""
    given = [{"required": [f], "properties": {f: {"not": {"type": "null"}}}} for f in fields]
    absent = [{"not": g} for g in given]

    def extra(schema: dict[str, Any], _: type[Any]) -> None:
        _add(schema, {"anyOf": [{"allOf": given}, {"allOf": absent}]})

    return extra
