"""The v2 list parameters on their own: filter expressions, order and the cursor (no HTTP)."""

from __future__ import annotations

import pytest

from together_simulator.errors import ApiError
from together_simulator.v2_listing import ListQuery, page

ITEMS = [
    {"name": "acme/alpha", "state": "READY", "created_at": "2026-01-01T00:00:00.000Z"},
    {"name": "acme/beta", "state": "STOPPED", "created_at": "2026-01-02T00:00:00.000Z"},
    {"name": "acme/gamma", "state": "READY", "created_at": "2026-01-03T00:00:00.000Z"},
]
FIELDS = ("name", "state", "created_at")


def names(filter: str | None = None, order_by: str | None = None, limit: int = 50) -> list[str]:
    selected, _ = page(ITEMS, lambda item: item, FIELDS, ListQuery(filter, order_by, limit, None))
    return [item["name"] for item in selected]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('state = "READY"', ["acme/alpha", "acme/gamma"]),
        ('state = "READY" AND name = "gamma"', ["acme/gamma"]),
        ('name = "beta" OR state = "READY" AND name = "alpha"', ["acme/alpha", "acme/beta"]),
        ('(name = "beta" OR state = "READY") AND name = "alpha"', ["acme/alpha"]),
        ('NOT state = "READY"', ["acme/beta"]),
        ('name : "mm"', ["acme/gamma"]),
        ('name = "*a"', ["acme/alpha", "acme/beta", "acme/gamma"]),
        ('name = "b*"', ["acme/beta"]),
        ('name = "acme/beta"', ["acme/beta"]),
        ('created_at > "2026-01-01T12:00:00Z"', ["acme/beta", "acme/gamma"]),
        ('created_at <= "2026-01-02T00:00:00+00:00"', ["acme/alpha", "acme/beta"]),
    ],
)
def test_filters(expression: str, expected: list[str]) -> None:
    assert names(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        'colour = "red"',
        "state = READY",
        '(state = "READY"',
        'state = "READY" AND',
        'created_at > "yesterday"',
        'created_at > "2026-01-01T00:00:00"',
        'created_at : "2026"',
    ],
)
def test_invalid_filters_are_400(expression: str) -> None:
    with pytest.raises(ApiError) as raised:
        names(expression)

    assert raised.value.status == 400
    assert raised.value.message.startswith("invalid filter expression")


def test_order_and_pages() -> None:
    first, cursor = page(ITEMS, lambda item: item, FIELDS, ListQuery(None, "created_at desc", 2, None))
    rest, last = page(ITEMS, lambda item: item, FIELDS, ListQuery(None, "created_at desc", 2, cursor))

    assert [item["name"] for item in first + rest] == ["acme/gamma", "acme/beta", "acme/alpha"]
    assert cursor is not None
    assert last is None


@pytest.mark.parametrize(
    "query",
    [{"limit": "0"}, {"limit": "501"}, {"limit": "many"}, {"after": "not-a-cursor"}, {"orderBy": "name"}],
)
def test_invalid_list_parameters_are_400(query: dict[str, str]) -> None:
    with pytest.raises(ApiError) as raised:
        page(ITEMS, lambda item: item, FIELDS, ListQuery.from_query({"orderBy": "created_at", **query}))

    assert raised.value.status == 400
