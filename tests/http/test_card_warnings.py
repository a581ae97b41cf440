"""A card that prices at 0 a quantity its LLM vendor charges for: warned of when published
(over HTTP and by `rate-cards load`), refused when strict; the README's card is not one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from typer.testing import CliRunner

from creditgate.cli.pricing import load_spec
from tests.http.conftest import Api
from tests.integration.test_margin_reports import cli

README = Path(__file__).resolve().parents[2] / "README.md"
UNPRICED = "actions.chat.completion.prices[0].per_unit.cache_write_tokens"


def no_cache_writes(**extra: Any) -> dict[str, Any]:
    """The usual chat card, without a price for cache writes (which gpt-4.1 bills)."""
    return {
        "asset": "credits",
        "credit_value_usd": "0.01",
        "actions": {
            "chat.completion": {
                "prices": [
                    {
                        "match": {"model": "gpt-4.1"},
                        "per_unit": {
                            "input_tokens": "0.002",
                            "cached_tokens": "0.0005",
                            "output_tokens": "0.008",
                        },
                        "vendor": {"llm": {"provider": "openai"}},
                        **extra,
                    }
                ]
            }
        },
    }


def readme_card() -> dict[str, Any]:
    found = re.search(r"```yaml\n(# card\.yaml.*?)```", README.read_text(), flags=re.DOTALL)
    assert found, "the README shows a card.yaml"
    spec = yaml.safe_load(found[1])
    assert isinstance(spec, dict)
    return spec


def test_publishing_warns_of_a_quantity_priced_at_0_that_the_vendor_bills(api: Api) -> None:
    published = api.post("/v1/rate-cards", {"spec": no_cache_writes()})
    assert published.status_code == 201
    (warning,) = published.json()["warnings"]
    assert warning.startswith(f"{UNPRICED}: gpt-4.1 costs $2 per million cache_write_tokens")


def test_strict_publishing_refuses_it_naming_the_price_and_publishes_nothing(api: Api) -> None:
    refused = api.post("/v1/rate-cards", {"spec": no_cache_writes(), "strict": True})
    assert refused.status_code == 422
    assert (refused.json()["code"], refused.json()["field"]) == (
        "unpriced_cost",
        f"spec.{UNPRICED}",
    )
    assert api.get("/v1/rate-cards").json()["data"] == []


def test_a_card_covering_every_billed_quantity_has_no_warning(api: Api) -> None:
    # Priced from vendor cost, every quantity the vendor bills is covered.
    multiple = no_cache_writes(vendor_multiple="2")
    assert api.post("/v1/rate-cards", {"spec": multiple, "strict": True}).json()["warnings"] == []
    published = api.post("/v1/rate-cards", {"spec": readme_card(), "strict": True})
    assert published.status_code == 201, published.text
    assert published.json()["warnings"] == []


def test_rate_cards_load_warns_and_refuses_when_strict(
    api: Api, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(no_cache_writes()))
    assert load_spec(path) == no_cache_writes()
    tenant = ["--db", db_url, "--tenant", api.tenant_id]
    strict = subprocess.run(
        [sys.executable, "-m", "creditgate", "rate-cards", "load", str(path), "--strict", *tenant],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert UNPRICED in " ".join(strict.stderr.split())
    assert api.get("/v1/rate-cards").json()["data"] == []

    loaded = CliRunner().invoke(cli(), ["rate-cards", "load", str(path), *tenant])
    assert loaded.exit_code == 0, loaded.output
    assert "warning:" in loaded.output and UNPRICED in " ".join(loaded.output.split())
    assert [v["version"] for v in api.get("/v1/rate-cards").json()["data"]] == [1]
