"""The SDK is its own distribution: an app installs it without the server's dependencies."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

SDK = Path(__file__).resolve().parents[2] / "sdk" / "python"
SERVER_ONLY = ("creditgate", "fastapi", "sqlalchemy", "psycopg", "stripe", "alembic", "uvicorn")


def _names(requires: list[str]) -> list[str]:
    return [r.split(";")[0].split(">")[0].split("=")[0].strip() for r in requires]


def test_the_sdk_requires_httpx_only() -> None:
    requires = importlib.metadata.requires("creditgate-sdk") or []
    # An extra (the LiteLLM plugin's) is installed only by those who ask for it.
    assert _names([r for r in requires if "extra ==" not in r]) == ["httpx"]


def test_the_sdk_imports_with_no_server_package_present() -> None:
    script = f"""
import importlib, importlib.abc, pkgutil, sys

class NoServer(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_ONLY!r}:
            raise ImportError(f"{{name}} is not installed beside the SDK")
        return None

sys.meta_path.insert(0, NoServer())
import creditgate_sdk
for module in pkgutil.walk_packages(creditgate_sdk.__path__, "creditgate_sdk."):
    importlib.import_module(module.name)
client = creditgate_sdk.Client("http://127.0.0.1:9", "cg_test_key")
client.close()
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_sdk_builds_a_wheel_of_its_own(tmp_path: Path) -> None:
    # Built from a copy, so the build's files stay out of the source tree.
    source = shutil.copytree(SDK, tmp_path / "sdk", ignore=shutil.ignore_patterns("*.egg-info"))
    build = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
            "--no-build-isolation", "--disable-pip-version-check",
            "--wheel-dir", str(tmp_path), str(source),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("creditgate_sdk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.startswith("creditgate_sdk-")}
    assert packages == {"creditgate_sdk"}
    assert "creditgate_sdk/py.typed" in names
    assert not any(n.startswith("creditgate/") for n in names)
    # httpx alone, and litellm for those who install the plugin's extra
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    info = zipfile.ZipFile(wheel).read(metadata).decode()
    requires = [
        line.split(":", 1)[1].strip()
        for line in info.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert _names([r for r in requires if "extra ==" not in r]) == ["httpx"]
    assert [r for r in requires if "extra ==" in r] == ['litellm>=1.110; extra == "litellm"']
    assert "Provides-Extra: litellm" in info.splitlines()
    assert "creditgate_sdk/integrations/litellm.py" in names
