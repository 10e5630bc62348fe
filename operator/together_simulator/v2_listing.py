"""List parameters of the v2 API: `filter`, `orderBy`, `limit` and the `after` cursor.

Filters are the reference's expressions: comparisons `field op "value"` (`=`, `!=`, `<`, `<=`, `>`, `>=`,
and `:` for a substring of `name`) joined by AND, OR, NOT and parentheses; `*` at either end of a
`name` value is a wildcard, and a bare name (no `/`) matches the
last segment of the qualified one. Timestamps compare as RFC 3339 instants. Anything else is
`400 invalid filter expression`. The cursor is opaque to clients: here, the position after the page.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from together_simulator.errors import ApiError

ItemT = TypeVar("ItemT")
Fields = Mapping[str, str]
"""An item's filterable fields as strings (timestamps in RFC 3339)."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
TIMESTAMP_FIELDS = ("created_at", "updated_at")

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"[^"]*")|(?P<op><=|>=|!=|=|<|>|:)|(?P<paren>[()])|(?P<word>[A-Za-z_]+))'
)


def _invalid(detail: str) -> ApiError:
    return ApiError(400, f"invalid filter expression: {detail}", param="filter")


Predicate = Callable[[Fields], bool]


class _Parser:
    """expr := term (OR term)*; term := factor (AND factor)*; factor := NOT factor | (expr) | comparison."""

    def __init__(self, text: str, fields: Sequence[str]) -> None:
        self._fields = fields
        self._tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            if match is None or match.lastgroup is None:
                raise _invalid(f"unexpected input at {position}")
            self._tokens.append((match.lastgroup, match.group(match.lastgroup)))
            position = match.end()
        self._next = 0

    def parse(self) -> Predicate:
        predicate = self._expr()
        if self._next != len(self._tokens):
            raise _invalid(f"unexpected {self._tokens[self._next][1]!r}")
        return predicate

    def _peek_word(self, word: str) -> bool:
        return self._next < len(self._tokens) and self._tokens[self._next] == ("word", word)

    def _take(self, kind: str) -> str:
        if self._next >= len(self._tokens) or self._tokens[self._next][0] != kind:
            raise _invalid(f"expected a {kind}")
        self._next += 1
        return self._tokens[self._next - 1][1]

    def _expr(self) -> Predicate:
        terms = [self._term()]
        while self._peek_word("OR"):
            self._next += 1
            terms.append(self._term())
        return lambda item: any(term(item) for term in terms)

    def _term(self) -> Predicate:
        factors = [self._factor()]
        while self._peek_word("AND"):
            self._next += 1
            factors.append(self._factor())
        return lambda item: all(factor(item) for factor in factors)

    def _factor(self) -> Predicate:
        if self._peek_word("NOT"):
            self._next += 1
            inner = self._factor()
            return lambda item: not inner(item)
        if self._next < len(self._tokens) and self._tokens[self._next] == ("paren", "("):
            self._next += 1
            inner = self._expr()
            if self._take("paren") != ")":
                raise _invalid("unbalanced parentheses")
            return inner
        name = self._take("word")
        if name not in self._fields:
            raise _invalid(f"unknown field {name!r}")
        op = self._take("op")
        value = self._take("string")[1:-1]
        return _comparison(name, op, value)


def _comparison(name: str, op: str, value: str) -> Predicate:
    if name in TIMESTAMP_FIELDS:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as error:
            raise _invalid(f"{value!r} is not an RFC 3339 timestamp") from error
        if moment.tzinfo is None:
            raise _invalid(f"{value!r} has no time zone")
        if op == ":":
            raise _invalid(f"':' does not apply to {name}")
        return lambda item: _compare(datetime.fromisoformat(item[name]), op, moment)
    if op == ":":
        return lambda item: value in item[name]
    if name == "model":
        # A model matches regardless of revision: items carry the unpinned name, and so does the value.
        value = value.split("/revisions/")[0]
    if name == "name" and "/" not in value:
        # A bare name matches the last segment of the qualified one.
        if op in ("=", "!=") and "*" in value:
            pattern = re.compile(".*".join(re.escape(part) for part in value.split("*")))
            return lambda item: (pattern.fullmatch(_bare(item[name])) is not None) == (op == "=")
        return lambda item: _compare(_bare(item[name]), op, value)
    return lambda item: _compare(item[name], op, value)


def _bare(name: str) -> str:
    return name.rpartition("/")[2]


def _compare(left: str | datetime, op: str, right: str | datetime) -> bool:
    match op:
        case "=":
            return left == right
        case "!=":
            return left != right
        case "<":
            return left < right  # type: ignore[operator]
        case "<=":
            return left <= right  # type: ignore[operator]
        case ">":
            return left > right  # type: ignore[operator]
        case _:
            return left >= right  # type: ignore[operator]


@dataclass(frozen=True)
class ListQuery:
    filter: str | None
    order_by: str | None
    limit: int
    after: str | None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ListQuery:
        raw_limit = query.get("limit")
        try:
            limit = int(raw_limit) if raw_limit is not None else DEFAULT_LIMIT
        except ValueError as error:
            raise ApiError(400, f"invalid limit {raw_limit!r}", param="limit") from error
        if not 1 <= limit <= MAX_LIMIT:
            raise ApiError(400, f"limit must be between 1 and {MAX_LIMIT}", param="limit")
        return cls(query.get("filter"), query.get("orderBy"), limit, query.get("after"))


def page(
    items: Sequence[ItemT], fields: Callable[[ItemT], Fields], filterable: Sequence[str], query: ListQuery
) -> tuple[list[ItemT], str | None]:
    """The page `query` asks for, and the cursor of the next one (None on the last page)."""
    selected = list(items)
    if query.filter:
        predicate = _Parser(query.filter, filterable).parse()
        selected = [item for item in selected if predicate(fields(item))]
    key, descending = _order(query.order_by)
    selected.sort(key=lambda item: fields(item)[key], reverse=descending)
    start = _decode_cursor(query.after)
    end = start + query.limit
    return selected[start:end], _encode_cursor(end) if end < len(selected) else None


def _order(order_by: str | None) -> tuple[str, bool]:
    if not order_by:
        return "created_at", False
    parts = order_by.split()
    if parts[0] not in TIMESTAMP_FIELDS or len(parts) > 2 or parts[1:] not in ([], ["asc"], ["desc"]):
        raise ApiError(400, f"invalid order_by {order_by!r}: created_at or updated_at, then asc or desc")
    return parts[0], parts[1:] == ["desc"]


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"after:{position}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        prefix, _, position = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if prefix == "after" and position.isdigit():
            return int(position)
    except ValueError:
        pass
    raise ApiError(400, "invalid page cursor", param="after")
