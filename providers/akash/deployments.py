"""Creating a job's deployment exactly once.

`POST /v1/deployments` is not idempotent: each create is a new deployment with its own
deposit. A create whose answer is lost (a timeout, a dropped connection, a 5xx from a proxy)
may have been committed all the same, so it is never repeated blindly: the account's active
deployments are listed and the job's found by its manifest version (the SDL carries the job
id, so the version is the job's own). Until a listing shows it or CREATE_SETTLE_SECONDS have
passed, the job waits rather than risking a second deployment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from providers.akash.console import Console, ConsoleError
from providers.errors import Rejected, Unavailable

logger = logging.getLogger(__name__)

DEPLOYMENTS_PAGE = 1000
# How long a create whose answer was lost may take to show in the listing (Console commits a
# create within a block or two); a create is only tried again after that.
CREATE_SETTLE_SECONDS = 60.0
DEPOSIT_REQUIRED = "deposit is required"


class Creator:
    def __init__(self, console: Console, poll_interval: float, deposit_usd: float | None) -> None:
        self.console = console
        self.poll_interval = poll_interval
        self.deposit_usd = deposit_usd
        self._manifest_checked = False
        self._listing: tuple[float, dict[str, str]] | None = None
        self._listing_lock = asyncio.Lock()
        # manifest version -> when a create of it lost its answer, until a listing shows it.
        self._lost: dict[str, float] = {}

    def forget(self) -> None:
        """The next find() lists afresh."""
        self._listing = None

    async def find(self, version: str) -> str | None:
        """The dseq of the active deployment with this manifest version, if any. One listing
        serves every submission for a poll interval (a burst of submissions lists once)."""
        async with self._listing_lock:
            kept = self._listing
            if kept is None or time.monotonic() - kept[0] >= self.poll_interval:
                kept = (time.monotonic(), await self._active())
                self._listing = kept
        return kept[1].get(version)

    async def _active(self) -> dict[str, str]:
        """manifest version -> dseq of every active deployment of the account."""
        found: dict[str, str] = {}
        skip = 0
        while True:
            page = await self.console.request(
                "GET",
                "/v1/deployments",
                params={"skip": skip, "limit": DEPLOYMENTS_PAGE},
                route="GET /v1/deployments",
            )
            for item in page.get("deployments") or []:
                deployment = item.get("deployment") or {}
                if deployment.get("state") == "active":
                    found[str(deployment.get("hash"))] = str(deployment["id"]["dseq"])
            if not (page.get("pagination") or {}).get("hasMore"):
                return found
            skip += DEPLOYMENTS_PAGE

    async def create(self, sdl_text: str, manifest: str, version: str) -> dict[str, Any]:
        """The new deployment's handle fields. Raises Unavailable while a lost create may
        still show up, Rejected when Console refuses the SDL or the deposit."""
        lost_at = self._lost.get(version)
        if lost_at is not None and time.monotonic() - lost_at < CREATE_SETTLE_SECONDS:
            found = await self._found_after_loss(version)
            if found is not None:
                return {"dseq": found, "manifest": manifest, "biddingSince": time.time()}
            raise Unavailable(
                "akash: waiting to see whether a create whose answer was lost took effect"
            )
        request: dict[str, Any] = {"sdl": sdl_text}
        if self.deposit_usd is not None:
            request["deposit"] = self.deposit_usd
        try:
            created = await self.console.request(
                "POST", "/v1/deployments", json={"data": request}, idempotent=False
            )
        except ConsoleError as exc:
            if DEPOSIT_REQUIRED in exc.message:
                raise Rejected(
                    "Akash refused the deployment: this Console account has no managed "
                    "deposits; set CORTEX_AKASH_DEPOSIT_USD"
                ) from exc
            raise Rejected(f"Akash refused the deployment: {exc.message}") from exc
        except Unavailable as exc:
            self._lost.setdefault(version, time.monotonic())
            found = await self._found_after_loss(version)
            if found is not None:
                return {"dseq": found, "manifest": manifest, "biddingSince": time.time()}
            raise Unavailable(f"akash: creating the deployment lost its answer: {exc}") from exc
        self._lost.pop(version, None)
        if created["manifest"] != manifest and not self._manifest_checked:
            # Finding a deployment again after a crash relies on computing its manifest.
            logger.error("akash: Console's manifest differs from the computed one")
        self._manifest_checked = True
        return {
            "dseq": str(created["dseq"]),
            "manifest": created["manifest"],
            "biddingSince": time.time(),
        }

    async def _found_after_loss(self, version: str) -> str | None:
        self.forget()
        try:
            found = await self.find(version)
        except (ConsoleError, Unavailable) as exc:
            logger.warning("akash: listing deployments after a lost create failed: %s", exc)
            return None
        if found is not None:
            logger.warning("akash: a create lost its answer; found its deployment %s", found)
            self._lost.pop(version, None)
        return found
