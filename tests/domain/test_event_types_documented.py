"""Every event type creditgate raises is documented, with when it is raised and its payload."""

from __future__ import annotations

import re
from pathlib import Path

from creditgate.domain.webhooks import EVENT_TYPES

EVENTS_DOC = Path(__file__).parents[2] / "docs" / "events.md"


def test_docs_events_lists_every_event_type_and_nothing_else() -> None:
    rows = re.findall(r"^\| `([a-z_.]+)` \|", EVENTS_DOC.read_text(), flags=re.MULTILINE)
    assert sorted(rows) == sorted(EVENT_TYPES)
