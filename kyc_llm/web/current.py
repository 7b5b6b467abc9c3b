"""The current app's ``Services``, for the blueprints (which ``kyc_llm.web`` imports)."""

from __future__ import annotations

from flask import current_app

from ..sessions import Services


def services() -> Services:
    """The current app's ``Services``."""
    services: Services = current_app.extensions["kyc"]
    return services
