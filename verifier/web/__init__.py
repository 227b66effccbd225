"""The HTTP API (aiohttp): ``create_app(settings)``; routes and roles in ``routes.ROUTES``."""

from verifier.web.app import create_app
from verifier.web.errors import HTTPProblem, envelope_middleware

__all__ = ["HTTPProblem", "create_app", "envelope_middleware"]
