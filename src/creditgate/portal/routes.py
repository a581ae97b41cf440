"""Mounting the portal, the dashboard and the portal-session API on the HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from creditgate.portal import account, dashboard, pages, web
from creditgate.portal import api as portal_api
from creditgate.portal.tokens import Tokens


def install(app: FastAPI, tokens: Tokens | None = None) -> None:
    app.state.portal_tokens = tokens or Tokens()
    app.add_exception_handler(web.MalformedForm, web.malformed_form)
    for router in (
        portal_api.router,
        web.static_router,
        pages.router,
        account.router,
        dashboard.router,
    ):
        app.include_router(router)
