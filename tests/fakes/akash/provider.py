"""The fake provider gateway (one server stands for every provider; TLS with a self-signed
certificate, as providers' are): the lease log websocket
`/lease/{dseq}/{gseq}/{oseq}/logs?follow=&tail=`, authorized by a Console-minted JWT that
grants `logs` on this provider. Frames are `{"name": "<pod>", "message": "<line>"}`; an
expired token gets `{"error": "tokenExpired"}`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.akash.console import read_jwt
from tests.fakes.akash.network import Network


def _grants_logs(claims: dict[str, Any], provider: str) -> bool:
    leases = claims.get("leases") or {}
    access = leases.get("access")
    if access == "full":
        return True
    if access == "scoped":
        return "logs" in (leases.get("scope") or [])
    if access == "granular":
        return any(
            p.get("provider") == provider
            and (p.get("access") == "full" or "logs" in (p.get("scope") or []))
            for p in leases.get("permissions") or []
        )
    return False


class FakeProviderGateway:
    def __init__(self, network: Network) -> None:
        self.network = network
        self.app = Starlette(routes=[WebSocketRoute("/lease/{dseq}/{gseq}/{oseq}/logs", self.logs)])

    async def _deny(self, socket: WebSocket, status: int, message: str) -> None:
        await socket.send_denial_response(JSONResponse({"message": message}, status_code=status))

    async def logs(self, socket: WebSocket) -> None:
        deployment = self.network.deployments.get(socket.path_params["dseq"])
        header = socket.headers.get("authorization", "")
        claims = read_jwt(self.network.jwt_secret, header.removeprefix("Bearer ").strip())
        lease = deployment.lease if deployment is not None else None
        if claims is None or lease is None or not _grants_logs(claims, lease.provider):
            await self._deny(socket, 401, "unauthorized")
            return
        if not self.network.providers[lease.provider].reachable:
            await self._deny(socket, 503, "provider unavailable")
            return
        workload = deployment.workload if deployment is not None else None
        if workload is None or lease.state != "active":
            await self._deny(socket, 400, "no running pods")
            return
        follow = socket.query_params.get("follow") == "true"
        tail = int(socket.query_params.get("tail", -1))
        await socket.accept()
        sent = max(len(workload.lines) - tail, 0) if tail >= 0 else 0
        pod = f"app-{deployment.dseq[-6:]}-0"
        try:
            while True:
                if time.time() > claims["exp"]:
                    await socket.send_json({"error": "tokenExpired"})
                    break
                while sent < len(workload.lines):
                    await socket.send_json({"name": pod, "message": workload.lines[sent]})
                    sent += 1
                if not follow or lease.state != "active":
                    break
                async with workload.grew:
                    if sent >= len(workload.lines) and lease.state == "active":
                        with contextlib.suppress(TimeoutError):
                            await _wait(workload.grew, 1.0)
            await socket.close()
        except WebSocketDisconnect:
            return


async def _wait(condition: Any, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await condition.wait()
