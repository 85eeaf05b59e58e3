"""OpenF1's query strings: filters on any field with `=`, `>`, `>=`, `<`, `<=`.

`lap_number>=10` is not a `key=value` pair (its `=` belongs to the operator, and
`speed>300` has none), so the query string is split on `&` and each part read as
FIELD OPERATOR VALUE. Values are read by the field's type: integers, numbers,
`true`/`false`, ISO 8601 dates (a date alone is its midnight UTC; a time without an
offset is UTC), text as given. As OpenF1 has it, several `=` on one field are any of
them (`driver_number=1&driver_number=44`), comparisons all hold (a range), and
different fields all hold.

`csv`, `version`, `limit` and `offset` are parameters, not filters.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

from f1daemon.errors import UserError

_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(>=|<=|>|<|=)(.*)$", re.DOTALL)
PARAMETERS = ("csv", "version", "limit", "offset")
_COMPARE = {
    ">": pc.greater,
    ">=": pc.greater_equal,
    "<": pc.less,
    "<=": pc.less_equal,
}
LATEST = "latest"


class QueryError(UserError):
    """A query that cannot be answered as asked: a 4xx with the reason."""


@dataclass(frozen=True)
class Condition:
    """One filter: `field op value` (the value as given, read by the field's type)."""

    field: str
    op: str
    value: str


@dataclass(frozen=True)
class Query:
    """A request's filters and parameters."""

    conditions: tuple[Condition, ...] = ()
    csv: bool = False
    version: str | None = None
    limit: int | None = None
    offset: int = 0

    def equal_to(self, name: str) -> list[str]:
        """The values a field is asked to equal (any of them)."""
        return [c.value for c in self.conditions if c.field == name and c.op == "="]


def parse_query(raw: str) -> Query:
    """A raw query string (as sent, percent-encoded) read as filters and parameters."""
    conditions: list[Condition] = []
    parameters: dict[str, str] = {}
    for part in raw.split("&"):
        if not part:
            continue
        # `+` is kept: it is an ISO 8601 offset's sign more often than a space here.
        match = _PART.match(unquote(part))
        if match is None:
            raise QueryError(
                f"cannot read {unquote(part)!r}: a filter is FIELD=VALUE, FIELD>VALUE, "
                "FIELD>=VALUE, FIELD<VALUE or FIELD<=VALUE"
            )
        name, op, value = match.groups()
        if name in PARAMETERS:
            if op != "=":
                raise QueryError(f"{name} takes `=`, not {op!r}")
            parameters[name] = value
        else:
            if value == "":
                raise QueryError(f"{name}{op} needs a value")
            conditions.append(Condition(name, op, value))
    return Query(
        conditions=tuple(conditions),
        csv=_boolean("csv", parameters.get("csv", "false")),
        version=parameters.get("version") or None,
        limit=_count("limit", parameters["limit"]) if "limit" in parameters else None,
        offset=_count("offset", parameters.get("offset", "0")),
    )


def _boolean(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    raise QueryError(f"{name} is true or false, not {text!r}")


def _count(name: str, text: str) -> int:
    if not text.isdigit():
        raise QueryError(f"{name} is a whole number of rows, not {text!r}")
    return int(text)


def value_of(name: str, text: str, kind: pa.DataType) -> pa.Scalar:
    """A filter's value as a scalar of its field's type."""
    try:
        if pa.types.is_integer(kind):
            return pa.scalar(int(text), kind)
        if pa.types.is_floating(kind):
            return pa.scalar(float(text), kind)
        if pa.types.is_boolean(kind):
            return pa.scalar(_boolean(name, text), kind)
        if pa.types.is_timestamp(kind):
            return pa.scalar(parse_date(text), kind)
    except ValueError:
        what = "a date (ISO 8601)" if pa.types.is_timestamp(kind) else f"of type {kind}"
        raise QueryError(f"{name} is {what}; cannot read {text!r}") from None
    if pa.types.is_string(kind):
        return pa.scalar(text.replace("+", " "), kind)
    raise QueryError(f"{name} is a list: it cannot be filtered on")


def parse_date(text: str) -> datetime:
    """An ISO 8601 date or time; UTC unless it says otherwise."""
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def apply(table: pa.Table, conditions: tuple[Condition, ...], endpoint: str) -> pa.Table:
    """The rows of a table that every filter holds for."""
    if not conditions:
        return table
    masks: list[pa.ChunkedArray | pa.Array] = []
    equal: dict[str, list[pa.Scalar]] = defaultdict(list)
    for condition in conditions:
        if condition.field not in table.column_names:
            fields = ", ".join(table.column_names)
            raise QueryError(f"{endpoint} has no field {condition.field!r}; its fields: {fields}")
        kind = table.schema.field(condition.field).type
        value = value_of(condition.field, condition.value, kind)
        if condition.op == "=":
            equal[condition.field].append(value)
        else:
            masks.append(_COMPARE[condition.op](table[condition.field], value))
    for name, values in equal.items():
        kind = table.schema.field(name).type
        masks.append(pc.is_in(table[name], value_set=pa.array([v.as_py() for v in values], kind)))
    mask = masks[0]
    for other in masks[1:]:
        mask = pc.and_kleene(mask, other)
    return table.filter(pc.fill_null(mask, False))
