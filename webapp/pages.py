"""HTML pages (owned by the front-end work; routes arrive with it)."""

from flask import Blueprint

bp = Blueprint("pages", __name__)
