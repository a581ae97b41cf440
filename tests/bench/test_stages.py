"""`python -m creditgate.bench.stages`: CPU per pair stage by stage against the floor's
(BENCHMARKS.md, "Stage by stage, in one process"). Run small here so that it keeps working:
every stage's pairs are answered as the API answers them (a stage whose calls failed would
raise), and what the diagnostic stages swap (the ledger's answers, the hand-over to threads) put
back after them."""

from __future__ import annotations

from creditgate.api import TenantLedger
from creditgate.bench.stages import run_stages
from creditgate.http.hot import HotRoutes


def test_every_stage_runs_and_what_it_swaps_is_put_back(postgres_server: str) -> None:
    swapped = (TenantLedger.authorize, TenantLedger.settle, HotRoutes._call)
    result = run_stages(postgres_server, pairs=12, rounds=1, lanes=2, warm=4)
    assert (TenantLedger.authorize, TenantLedger.settle, HotRoutes._call) == swapped
    figures = result["cpu_ms_per_pair"]
    assert set(figures) == {
        "floor: db",
        "floor: app",
        "floor: app, 2 lanes",
        "creditgate: db",
        "creditgate: app",
        "creditgate: app, 2 lanes",
        "creditgate: app, ledger answered from memory",
        "creditgate: app, endpoints on the event loop",
        "creditgate: ledger behind the floor's ASGI",
    }
    assert all(value > 0 for value in figures.values())
    assert set(result["ratio_to_floor"]) == {"db", "app", "app, 2 lanes"}
    assert result["app_layers_ms_per_pair"]["creditgate"] == round(
        figures["creditgate: app"] - figures["creditgate: db"], 3
    )
