"""``batonflow serve``: the HTTP API over the public API, with live updates and metrics.

``create_app(...)`` builds the FastAPI application from a :class:`~batonflow.configuration.Setup`
(the object the command line uses, so governance is identical). Its API lives under
``/api/v1``; ``/`` is left for the web console, ``/hooks`` for triggers: each is a router that
``create_app`` includes (see ``docs/api.md``). FastAPI and uvicorn are imported only here, so
``import batonflow`` stays light.
"""

from batonflow.server._app import API_PREFIX, ServeOptions, create_app

__all__ = ["API_PREFIX", "ServeOptions", "create_app"]
