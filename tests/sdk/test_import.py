"""The SDK installs into a product's backend with httpx as its only dependency."""

from __future__ import annotations

import json
import subprocess
import sys

import creditgate_sdk

PROBE = """
import json, sys
before = set(sys.modules)
import {module}
print(json.dumps(sorted({{m.split(".")[0] for m in set(sys.modules) - before}})))
"""


def _top_level_imports(module: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    names = set(json.loads(out.stdout))
    return {n for n in names if n not in sys.stdlib_module_names and not n.startswith("_")}


def test_importing_the_sdk_loads_nothing_beyond_httpx() -> None:
    sdk = _top_level_imports("creditgate_sdk")
    httpx_alone = _top_level_imports("httpx")

    assert "httpx" in sdk
    for forbidden in ("creditgate", "sqlalchemy", "pydantic", "openai", "anthropic"):
        assert forbidden not in sdk, f"creditgate_sdk imports {forbidden}"
    assert sdk - httpx_alone == {"creditgate_sdk"}


def test_the_package_is_typed_and_exports_what_it_lists() -> None:
    from importlib.resources import files

    assert files("creditgate_sdk").joinpath("py.typed").is_file()
    missing = [name for name in creditgate_sdk.__all__ if not hasattr(creditgate_sdk, name)]
    assert missing == []
