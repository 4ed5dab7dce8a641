"""The fake Console API: the managed-wallet routes the gateway uses, with Console's wire
format (see ../shared/reference/providers/akash.md): bodies wrapped in `{"data": ...}` (not
the POST /v1/leases request), dseq as a decimal string, error bodies
`{"error", "message", "code", "type"}`, `x-api-key` authentication."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.akash.network import OWNER, Deployment, Lease, Network, SdlError, height

_ERROR_NAMES = {
    400: ("BadRequestError", "bad_request"),
    401: ("UnauthorizedError", "unauthorized"),
    402: ("PaymentRequiredError", "payment_required"),
    404: ("NotFoundError", "not_found"),
    429: ("TooManyRequestsError", "rate_limited"),
    503: ("ServiceUnavailableError", "service_unavailable"),
}
BID_NOT_OPEN = (
    "Failed to create lease: Cannot create lease: The selected bid is no longer open. "
    "Please refresh and select an available bid."
)
ORDER_NOT_OPEN = (
    "Failed to create lease: Cannot create lease: The associated order has already been "
    "matched or closed. Re-create the deployment to generate a new order and try again."
)
JWT_SCOPES = {
    "send-manifest",
    "get-manifest",
    "logs",
    "shell",
    "events",
    "status",
    "restart",
    "hostname-migrate",
    "ip-migrate",
    "attestation",
}


def error(status: int, message: str, **headers: str) -> JSONResponse:
    name, code = _ERROR_NAMES.get(status, ("InternalServerError", "unknown_error"))
    kind = "client_error" if status < 500 else "server_error"
    body = {"error": name, "message": message, "code": code, "type": kind}
    return JSONResponse(body, status_code=status, headers=headers or None)


def validation_error(issues: list[dict[str, Any]]) -> JSONResponse:
    body = {
        "error": "BadRequestError",
        "message": "Validation error",
        "code": "validation_error",
        "type": "validation_error",
        "data": issues,
    }
    return JSONResponse(body, status_code=400)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint_jwt(secret: bytes, claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def read_jwt(secret: bytes, token: str) -> dict[str, Any] | None:
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64(expected), signature):
            return None
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
        return claims
    except (ValueError, json.JSONDecodeError):
        return None


def _deployment_body(deployment: Deployment, network: Network, *, status: bool) -> dict[str, Any]:
    leases = []
    if deployment.lease is not None:
        lease = deployment.lease
        item: dict[str, Any] = {
            "id": {
                "owner": OWNER,
                "dseq": deployment.dseq,
                "gseq": lease.gseq,
                "oseq": lease.oseq,
                "provider": lease.provider,
                "bseq": lease.bseq,
            },
            "state": lease.state,
            "price": {"denom": "uact", "amount": lease.price},
            "created_at": str(lease.created_at),
            "closed_on": str(lease.closed_on),
        }
        if lease.reason:
            item["reason"] = lease.reason
        if status:
            item["status"] = network.lease_status(deployment)
        leases.append(item)
    return {
        "deployment": {
            "id": {"owner": OWNER, "dseq": deployment.dseq},
            "state": deployment.state,
            "hash": deployment.version,
            "created_at": str(deployment.created_at),
        },
        "leases": leases,
        "escrow_account": {
            "id": {"scope": "deployment", "xid": f"{OWNER}/{deployment.dseq}"},
            "state": {
                "owner": OWNER,
                "state": deployment.escrow if deployment.state == "active" else "closed",
                "transferred": [{"denom": "uact", "amount": "0"}],
                "settled_at": str(height()),
                "funds": [{"denom": "uact", "amount": "500000"}],
                "deposits": [],
            },
        },
    }


class FakeConsole:
    def __init__(self, network: Network, api_key: str) -> None:
        self.network = network
        self.api_key = api_key
        self.requests: Counter[str] = Counter()
        # (route, monotonic time) of every request, in order, for tests of retry timing.
        self.timeline: list[tuple[str, float]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/deployments", self.create_deployment, methods=["POST"]),
                Route("/v1/deployments", self.list_deployments, methods=["GET"]),
                Route("/v1/deployments/{dseq}", self.get_deployment, methods=["GET"]),
                Route("/v1/deployments/{dseq}", self.close_deployment, methods=["DELETE"]),
                Route("/v1/bids", self.list_bids, methods=["GET"]),
                Route("/v1/bids/{dseq}", self.list_bids, methods=["GET"]),
                Route("/v1/leases", self.create_lease, methods=["POST"]),
                Route("/v1/create-jwt-token", self.create_jwt, methods=["POST"]),
                Route("/v1/providers/{address}", self.get_provider, methods=["GET"]),
                Route("/v1/balances", self.balances, methods=["GET"]),
                Route("/_fake/state", self.fake_state, methods=["GET"]),
                Route("/_fake/faults", self.fake_faults, methods=["POST"]),
                Route("/_fake/providers/{address}", self.fake_provider, methods=["POST"]),
            ],
            middleware=[Middleware(_Gate, console=self)],
        )

    # -- gate: faults and authentication ---------------------------------------------------

    def gate(self, request: Request, route: str) -> Response | None:
        self.requests[route] += 1
        self.timeline.append((route, time.monotonic()))
        network = self.network
        if network.rate_limited > 0:
            network.rate_limited -= 1
            return error(429, "Too many requests", **{"Retry-After": "1"})
        if network.failing > 0:
            network.failing -= 1
            return error(503, "Service temporarily unavailable")
        if route.startswith("GET /v1/providers"):
            return None  # public
        key = request.headers.get("x-api-key")
        if key and request.headers.get("authorization"):
            return error(400, "Authorization and X-Api-Key headers are mutually exclusive")
        if key != self.api_key:
            return error(401, "Invalid API key")
        return None

    # -- deployments -------------------------------------------------------------------------

    async def create_deployment(self, request: Request) -> Response:
        body = await _json(request)
        data = (body.get("data") or {}) if isinstance(body, dict) else {}
        sdl = data.get("sdl")
        if not isinstance(sdl, str):
            return validation_error([{"path": ["data", "sdl"], "message": "Required"}])
        deposit = data.get("deposit")
        if deposit is not None and (not isinstance(deposit, int | float) or deposit <= 0):
            return validation_error([{"path": ["data", "deposit"], "message": "Invalid"}])
        if deposit is None and not self.network.managed_deposits:
            return error(400, "deposit is required")
        try:
            deployment = self.network.create(sdl)
        except SdlError as exc:
            return error(400, f"Invalid SDL: {exc}")
        if deposit is not None and not self.network.managed_deposits:
            self.network.deposits[deployment.dseq] = float(deposit)
        if self.network.drop_create_answers > 0:
            self.network.drop_create_answers -= 1
            return _DroppedAnswer()
        data = {
            "dseq": deployment.dseq,
            "manifest": deployment.manifest,
            "signTx": {
                "code": 0,
                "transactionHash": secrets.token_hex(32).upper(),
                "rawLog": "[]",
            },
        }
        return JSONResponse({"data": data}, status_code=201)

    async def list_deployments(self, request: Request) -> Response:
        skip = int(request.query_params.get("skip", 0))
        limit = int(request.query_params.get("limit", 1000))
        active = [d for d in self.network.deployments.values() if d.state == "active"]
        page = active[skip : skip + limit]
        data = {
            "deployments": [_deployment_body(d, self.network, status=False) for d in page],
            "pagination": {
                "total": len(active),
                "skip": skip,
                "limit": limit,
                "hasMore": skip + limit < len(active),
            },
        }
        return JSONResponse({"data": data})

    def _find(self, dseq: str) -> Deployment | None:
        return self.network.deployments.get(dseq)

    async def get_deployment(self, request: Request) -> Response:
        deployment = self._find(request.path_params["dseq"])
        if deployment is None:
            return error(404, "Deployment not found")
        return JSONResponse({"data": _deployment_body(deployment, self.network, status=True)})

    async def close_deployment(self, request: Request) -> Response:
        deployment = self._find(request.path_params["dseq"])
        if deployment is None:
            return error(404, "Deployment not found")
        if self.network.failing_closes > 0:
            self.network.failing_closes -= 1
            return error(500, "Failed to close deployment: upstream transaction failed")
        await self.network.close(deployment)
        return JSONResponse({"data": {"success": True}})

    # -- bids and leases ---------------------------------------------------------------------

    async def list_bids(self, request: Request) -> Response:
        dseq = request.path_params.get("dseq") or request.query_params.get("dseq")
        if not dseq:
            return validation_error([{"path": ["dseq"], "message": "Required"}])
        if self.network.refuse_bids:
            return error(400, "Invalid query: dseq filter is not supported for this owner")
        deployment = self._find(dseq)
        bids = self.network.bids(deployment) if deployment is not None else []
        data = [
            {
                "bid": {
                    "id": {
                        "owner": OWNER,
                        "dseq": dseq,
                        "gseq": 1,
                        "oseq": 1,
                        "provider": bid.provider,
                        "bseq": bid.bseq,
                    },
                    "state": bid.state,
                    "price": {"denom": "uact", "amount": bid.price},
                    "created_at": str(bid.created_at),
                    "resources_offer": [],
                },
                "escrow_account": {},
            }
            for bid in bids
        ]
        return JSONResponse({"data": data})

    async def create_lease(self, request: Request) -> Response:
        body = await _json(request)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("manifest"), str)
            or not isinstance(body.get("leases"), list)
            or not body["leases"]
        ):
            return validation_error([{"path": ["manifest"], "message": "Required"}])
        network = self.network
        for wanted in body["leases"]:
            deployment = self._find(str(wanted.get("dseq")))
            if deployment is None:
                return error(404, "Deployment not found")
            if deployment.state != "active":
                return error(400, "Failed to create lease: Deployment closed")
            if body["manifest"] != deployment.manifest:
                return error(400, "Invalid manifest")
            lease = deployment.lease
            if lease is not None and lease.state == "active":
                if lease.provider == wanted.get("provider"):
                    continue  # already leased: Console only sends the manifest again
                return error(400, ORDER_NOT_OPEN)
            if network.close_next_order:
                network.close_next_order = False
                deployment.order = "closed"
                for bid in deployment.bids:
                    bid.state = "closed"
                return error(400, ORDER_NOT_OPEN)
            bid = next(
                (b for b in network.bids(deployment) if b.provider == wanted.get("provider")),
                None,
            )
            if bid is None:
                return error(404, f"Provider {wanted.get('provider')} not found")
            if network.withdraw_next_bid and bid.state == "open":
                network.withdraw_next_bid = False
                bid.state = "closed"
            if bid.state != "open":
                return error(400, BID_NOT_OPEN)
            for other in deployment.bids:
                if other is bid:
                    other.state = "active"
                elif other.state == "open":
                    other.state = "lost"
            deployment.order = "active"
            deployment.lease = Lease(
                provider=bid.provider,
                gseq=1,
                oseq=1,
                bseq=bid.bseq,
                price=bid.price,
                created_at=height(),
                created=time.monotonic(),
            )
            network.start_workload(deployment)
        first = self._find(str(body["leases"][0]["dseq"]))
        assert first is not None
        return JSONResponse({"data": _deployment_body(first, network, status=True)})

    # -- logs access ---------------------------------------------------------------------------

    async def create_jwt(self, request: Request) -> Response:
        body = await _json(request)
        data = body.get("data") if isinstance(body, dict) else None
        leases = (data or {}).get("leases") or {}
        access = leases.get("access")
        valid = isinstance((data or {}).get("ttl"), int)
        valid = valid and access in ("full", "scoped", "granular")
        if access == "scoped":
            valid = valid and set(leases.get("scope") or []) <= JWT_SCOPES
        if access == "granular":
            valid = valid and all(
                p.get("provider") and set(p.get("scope") or []) <= JWT_SCOPES
                for p in leases.get("permissions") or []
            )
        if not valid or data is None:
            return validation_error([{"path": ["data"], "message": "Invalid JWT request"}])
        claims = {
            "iss": OWNER,
            "iat": int(time.time()),
            "exp": time.time() + min(data["ttl"], self.network.max_jwt_ttl or data["ttl"]),
            "version": "v1",
            "leases": leases,
        }
        token = mint_jwt(self.network.jwt_secret, claims)
        return JSONResponse({"data": {"token": token}}, status_code=201)

    async def get_provider(self, request: Request) -> Response:
        provider = self.network.providers.get(request.path_params["address"])
        if provider is None:
            return error(404, "Provider not found")
        return JSONResponse(
            {
                "owner": provider.address,
                "name": provider.address[-8:],
                "hostUri": provider.host_uri,
                "isOnline": provider.reachable,
                "isAudited": True,
                "uptime1d": 1.0,
                "attributes": [],
            }
        )

    async def balances(self, request: Request) -> Response:
        active = [d for d in self.network.deployments.values() if d.state == "active"]
        escrow = 500_000 * len(active)
        return JSONResponse(
            {"data": {"balance": 100_000_000, "deployments": escrow, "total": 100_000_000 + escrow}}
        )

    # -- controls for tests and hand checks (not part of Console) --------------------------------

    async def fake_state(self, request: Request) -> Response:
        deployments = [
            {
                "dseq": d.dseq,
                "jobId": d.job_id,
                "state": d.state,
                "lease": None
                if d.lease is None
                else {"provider": d.lease.provider, "state": d.lease.state},
                "workloadAlive": d.workload is not None and d.workload.alive,
            }
            for d in self.network.deployments.values()
        ]
        return JSONResponse({"deployments": deployments, "requests": dict(self.requests)})

    async def fake_faults(self, request: Request) -> Response:
        body = await _json(request)
        for name in (
            "rate_limited",
            "failing",
            "withdraw_next_bid",
            "close_next_order",
            "refuse_bids",
            "max_jwt_ttl",
            "drop_create_answers",
            "managed_deposits",
            "failing_closes",
        ):
            if name in body:
                setattr(self.network, name, body[name])
        return JSONResponse({"ok": True})

    async def fake_provider(self, request: Request) -> Response:
        provider = self.network.providers[request.path_params["address"]]
        body = await _json(request)
        provider.reachable = bool(body.get("reachable", provider.reachable))
        if "lease_state" in body:
            # Every running lease of this provider moves to that state.
            for deployment in self.network.deployments.values():
                lease = deployment.lease
                if lease and lease.provider == provider.address and lease.state == "active":
                    await self.network.end_lease(deployment, str(body["lease_state"]))
        if "price" in body:
            provider.price = float(body["price"])
        return JSONResponse({"ok": True})


class _DroppedAnswer(Response):
    """Starts an answer and never finishes it: the server closes the connection, and the
    client sees a peer that went away mid-answer, as after a proxy's timeout."""

    def __init__(self) -> None:
        super().__init__(status_code=201)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"999")],
            }
        )


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


class _Gate:
    """Counts each request by route, applies injected faults, checks the API key."""

    def __init__(self, app: Any, console: FakeConsole) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_fake/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        refusal = self.console.gate(request, _route(scope["method"], scope["path"]))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _route(method: str, path: str) -> str:
    parts = path.rstrip("/").split("/")
    if len(parts) == 4 and parts[2] == "deployments":
        return f"{method} /v1/deployments/{{dseq}}"
    if len(parts) == 4 and parts[2] == "providers":
        return f"{method} /v1/providers/{{address}}"
    if len(parts) == 4 and parts[2] == "bids":
        return f"{method} /v1/bids"
    return f"{method} {path}"
