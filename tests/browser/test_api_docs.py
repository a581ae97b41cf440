"""The API reference pages render in a real browser with every request kept on the server."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.browser.conftest import ON_SQLITE, Server, playwright_api, screenshot

expect = playwright_api().expect

# The reference is the OpenAPI document and the vendored files, the same whatever database
# the server keeps its books in.
pytestmark = ON_SQLITE


def _offline(page: Any, server: Server) -> list[str]:
    """Refuses every request that leaves the server; returns what was tried."""
    own = urlsplit(server.base).netloc
    outside: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlsplit(url).netloc == own or url.startswith("data:"):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    page.route("**/*", route)
    return outside


def test_swagger_ui_lists_the_operations_offline(page: Any, server: Server) -> None:
    outside = _offline(page, server)
    page.goto(f"{server.base}/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 40
    expect(page.get_by_text("/v1/authorizations").first).to_be_visible()
    screenshot(page, "api-docs")
    assert outside == []


def test_redoc_renders_the_reference_offline(page: Any, server: Server) -> None:
    outside = _offline(page, server)
    page.goto(f"{server.base}/redoc")
    # The reference is large: Redoc may take a while to lay it out on a loaded machine.
    expect(page.get_by_role("menuitem", name="customers").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("creditgate").first).to_be_visible()
    screenshot(page, "api-redoc")
    assert outside == []


def test_unknown_docs_file_is_not_found(server: Server) -> None:
    import httpx

    assert httpx.get(f"{server.base}/docs/static/../app.py").status_code == 404
    assert httpx.get(f"{server.base}/docs/static/nope.js").status_code == 404
    css = httpx.get(f"{server.base}/docs/static/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
