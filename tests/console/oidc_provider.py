"""A small real OpenID Connect provider for the console's sign-in tests: discovery, JWKS, an
authorize endpoint that signs in whoever the test says (``provider.person``), and a token
endpoint that checks the client, the code and its PKCE verifier and answers an RS256 ID token
signed with a key generated for the test. Served by uvicorn on a loopback port in a thread."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from typing import Any

import uvicorn
from authlib.common.urls import add_params_to_uri
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "batonflow-console"
CLIENT_SECRET = "test-client-secret"


class Provider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.person: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.url = ""
        self.app = self._app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }  # fmt: skip

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return {"keys": [self.key.as_dict(private=False)]}

        @app.get("/authorize")
        def authorize(
            client_id: str, redirect_uri: str, state: str, nonce: str, code_challenge: str,
            code_challenge_method: str, response_type: str, scope: str,
        ) -> RedirectResponse:  # fmt: skip
            if client_id != CLIENT_ID or response_type != "code" or "openid" not in scope:
                raise HTTPException(400, "bad authorization request")
            assert code_challenge_method == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "nonce": nonce, "redirect_uri": redirect_uri, "challenge": code_challenge,
                "person": dict(self.person),
            }  # fmt: skip
            return RedirectResponse(add_params_to_uri(redirect_uri, {"code": code, "state": state}))

        @app.post("/token")
        def token(
            grant_type: str = Form(), code: str = Form(), redirect_uri: str = Form(),
            client_id: str = Form(), client_secret: str = Form(), code_verifier: str = Form(),
        ) -> dict[str, Any]:  # fmt: skip
            issued = self.codes.pop(code, None)
            if issued is None or (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
                raise HTTPException(400, "invalid_grant")
            digest = hashlib.sha256(code_verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != issued["challenge"]:
                raise HTTPException(400, "PKCE verifier does not match")
            if grant_type != "authorization_code" or redirect_uri != issued["redirect_uri"]:
                raise HTTPException(400, "invalid_request")
            now = int(time.time())
            claims = {"iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                      "nonce": issued["nonce"], **issued["person"]}  # fmt: skip
            header = {"alg": "RS256", "kid": "k1"}
            id_token = jwt.encode(header, claims, self.key)
            return {"access_token": "unused", "token_type": "Bearer", "id_token": id_token}

        return app

    def start(self) -> Provider:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:  # a real server in a thread: wait for it to listen
            if time.monotonic() > deadline:
                raise AssertionError("the test OIDC provider did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)
