"""The LiteLLM plugin costs nothing until it is asked for, and loads the ways the docs say:
by either module name, and from a LiteLLM proxy config (`litellm_settings.callbacks`)."""

from __future__ import annotations

from pathlib import Path

from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy.types_utils.utils import get_instance_fn

import creditgate.integrations.litellm as server_name
import creditgate_sdk.integrations.litellm as plugin
from tests.processes import fresh_python

LOADED = """
import json, sys
{imports}
print(json.dumps(sorted(m for m in sys.modules if m == "litellm" or m.startswith("litellm."))))
"""


def _litellm_modules_after(imports: str) -> list[str]:
    return list(fresh_python(LOADED.format(imports=imports)))


def test_neither_the_sdk_nor_the_server_loads_litellm_unless_the_plugin_is_imported() -> None:
    imports = "\n".join(
        f"import {module}"
        for module in (
            "creditgate_sdk",
            "creditgate_sdk.integrations",
            "creditgate_sdk.estimates",
            "creditgate",
            "creditgate.integrations",
            "creditgate.server.app",
            "creditgate.cli",
        )
    )
    assert _litellm_modules_after(imports) == []
    assert "litellm" in _litellm_modules_after("import creditgate_sdk.integrations.litellm")


def test_the_plugin_goes_by_the_server_packages_name_too() -> None:
    assert server_name.CreditgateLogger is plugin.CreditgateLogger
    assert server_name.handler is plugin.handler
    assert isinstance(plugin.handler, CustomLogger)


def test_a_proxy_config_names_the_ready_handler_or_one_of_its_own(tmp_path: Path) -> None:
    # `litellm_settings: callbacks: creditgate.integrations.litellm.handler`
    assert get_instance_fn("creditgate.integrations.litellm.handler") is plugin.handler
    # ... or a module beside the proxy's config.yaml that makes its own
    (tmp_path / "creditgate_callbacks.py").write_text(
        "from creditgate.integrations.litellm import CreditgateLogger\n"
        'handler = CreditgateLogger(rate_card="llm", default_max_tokens=1024)\n'
    )
    config = tmp_path / "config.yaml"
    own = get_instance_fn("creditgate_callbacks.handler", config_file_path=str(config))
    assert isinstance(own, plugin.CreditgateLogger)
    assert (own.rate_card, own.default_max_tokens) == ("llm", 1024)
