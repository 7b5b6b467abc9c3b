"""HTML pages: the webcam verification page and the operator console (both static shells
that talk to the JSON API from JavaScript)."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> str:
    return render_template("index.html")


@bp.get("/operator")
def operator() -> str:
    return render_template("operator.html")
