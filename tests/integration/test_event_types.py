"""Every event goes through `emit` (or `emit_once`), named by `EventType`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from creditgate.api import Creditgate
from creditgate.domain.webhooks import EVENT_TYPES, TEST_EVENT_TYPE, EventType
from creditgate.services.wallet import emit, emit_once
from creditgate.storage.tables import events

ROOT = Path(__file__).resolve().parents[2]


def test_emit_takes_only_an_event_type(cg: Creditgate) -> None:
    tenant = cg.create_tenant("events")

    def work(conn: object) -> None:
        emit(cg.tx(conn, tenant.id), "grant.voided", None, {})  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="EventType"):
        cg.db.run(work)


def test_an_announcement_is_written_once_however_often_it_is_made(cg: Creditgate) -> None:
    tenant = cg.create_tenant("announcements")
    announced = [("evt_xonce", None, {"lot": "lot_once"})]

    def announce(conn: object) -> int:
        return emit_once(cg.tx(conn, tenant.id), EventType.GRANT_EXPIRING, announced)

    assert [cg.db.run(announce) for _ in range(3)] == [1, 0, 0]
    rows = cg.db.run(
        lambda conn: conn.execute(  # type: ignore[attr-defined]
            select(events.c.type).where(events.c.tenant_id == tenant.id)
        ).all(),
        read_only=True,
    )
    assert [r.type for r in rows] == ["grant.expiring"]


def test_subscribable_types_are_every_type_but_the_test_event() -> None:
    assert set(EVENT_TYPES) | {TEST_EVENT_TYPE} == {t.value for t in EventType}
    assert TEST_EVENT_TYPE not in EVENT_TYPES


def test_every_event_type_is_documented() -> None:
    page = (ROOT / "docs" / "events.md").read_text()
    missing = [t.value for t in EventType if f"`{t.value}`" not in page]
    assert missing == []


def test_no_event_is_written_around_emit() -> None:
    """Only storage/postings.py writes the events table; no use case names a type as text."""
    writers, literal_types = [], []
    for path in (ROOT / "src" / "creditgate").rglob("*.py"):
        text = path.read_text()
        relative = path.relative_to(ROOT)
        if "migrations" in path.parts:
            continue
        if re.search(r"insert\(events\b|events\.insert\(", text) and path.name != "postings.py":
            writers.append(str(relative))
        if re.search(r"emit(_once)?\(\s*tx,\s*[\"']", text):
            literal_types.append(str(relative))
    assert writers == [] and literal_types == []
