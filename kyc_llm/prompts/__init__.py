"""Prompt templates the product team edits in ``prompts/``: loading, checking, rendering.

``check_all(prompts_dir)`` is what the server runs at start-up (it raises ``TemplateError``
on the first problem); ``python -m kyc_llm.prompts check|render NAME`` is the same from a shell.
"""

from __future__ import annotations

from ..llm.errors import TemplateError
from .loader import Template, TemplateInfo, Templates, check_all, load_template, load_templates

__all__ = [
    "Template",
    "TemplateError",
    "TemplateInfo",
    "Templates",
    "check_all",
    "load_template",
    "load_templates",
]
