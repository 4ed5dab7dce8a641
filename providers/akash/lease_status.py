"""What Console's answer about a leased deployment means for the workload: the lease's state
through one table, its status (`null` while Console cannot reach the provider), readiness,
the exit code the log showed, and the job's endpoints."""

from __future__ import annotations

import logging
import time
from typing import Any

from providers.akash import sdl as sdl_module
from providers.types import (
    Endpoint,
    FailureReason,
    Handle,
    WorkloadState,
    WorkloadStatus,
)

logger = logging.getLogger(__name__)

LEASE_STATES = {
    "active": WorkloadState.RUNNING,
    "insufficient_funds": WorkloadState.FAILED,
    "closed": WorkloadState.FAILED,
    "reclaiming": WorkloadState.FAILED,
}
# Why a lease in that state ended, in words an operator can act on (`{}`: the deployment).
LEASE_ENDINGS = {
    "insufficient_funds": (
        "The escrow of deployment {} ran out of funds (lease insufficient_funds); "
        "top up the Console account."
    ),
    "reclaiming": "The provider is taking back its lease on deployment {} (lease reclaiming).",
}


def interpret(
    handle: Handle, body: dict[str, Any], *, exit_code: int | None, status_timeout: float
) -> WorkloadStatus:
    """The workload's state from Console's answer about its deployment (`GET
    /v1/deployments/{dseq}` or `POST /v1/leases`) and the exit code its log showed."""
    lease_id = handle["lease"]
    dseq = lease_id["dseq"]
    lease = next(
        (
            item
            for item in body.get("leases") or []
            if item["id"]["provider"] == lease_id["provider"]
            and item["id"]["gseq"] == lease_id["gseq"]
            and item["id"]["oseq"] == lease_id["oseq"]
        ),
        None,
    )
    deployment_state = (body.get("deployment") or {}).get("state")
    if lease is None or deployment_state == "closed":
        return WorkloadStatus(
            WorkloadState.FAILED,
            reason=FailureReason.PROVIDER_ERROR,
            message=f"Akash deployment {dseq} was closed on the network.",
        )
    mapped = LEASE_STATES.get(lease["state"])
    if mapped is None:
        logger.warning("akash: unmapped lease state %r of %s", lease["state"], dseq)
        return WorkloadStatus(WorkloadState.UNKNOWN)
    if mapped is WorkloadState.FAILED:
        reason = lease.get("reason") or lease["state"]
        ending = LEASE_ENDINGS.get(lease["state"])
        message = (
            ending.format(dseq)
            if ending
            else f"The provider's lease on deployment {dseq} ended: {reason}."
        )
        return WorkloadStatus(
            WorkloadState.FAILED,
            reason=FailureReason.PROVIDER_ERROR,
            message=f"{message} The deployment was closed.",
        )
    status = lease.get("status")
    if status is None:
        return _unknown_status(handle, status_timeout)
    updated = {**handle, "statusNullSince": None} if handle["statusNullSince"] else None
    if exit_code is not None:
        code = exit_code
        return WorkloadStatus(
            WorkloadState.EXITED,
            exit_code=code,
            reason=FailureReason.EXIT_CODE if code else None,
            message=f"exited with code {code}" if code else None,
            handle=updated,
        )
    services = status.get("services") or {}
    ready = bool(services) and all(
        (svc.get("ready_replicas") or 0) >= max(svc.get("total") or 1, 1)
        for svc in services.values()
    )
    if not ready:
        return WorkloadStatus(WorkloadState.STARTING, handle=updated)
    endpoints = _endpoints(handle, status)
    if handle.get("told") != "ready":
        where = ", ".join(endpoint.url for endpoint in endpoints) or "no exposed ports"
        note = f"Lease on deployment {dseq} {lease['state']}; the service is ready ({where})."
        return WorkloadStatus(
            WorkloadState.RUNNING,
            endpoints=endpoints,
            handle={**(updated or handle), "told": "ready"},
            notes=(note,),
        )
    return WorkloadStatus(WorkloadState.RUNNING, endpoints=endpoints, handle=updated)


def _unknown_status(handle: Handle, status_timeout: float) -> WorkloadStatus:
    """The provider did not answer Console's status request (`status: null`)."""
    since = handle["statusNullSince"]
    now = time.time()
    if since is None:
        return WorkloadStatus(WorkloadState.STARTING, handle={**handle, "statusNullSince": now})
    if now - since > status_timeout:
        return WorkloadStatus(
            WorkloadState.FAILED,
            reason=FailureReason.PROVIDER_ERROR,
            message=(
                f"The provider of deployment {handle['lease']['dseq']} has not reported the "
                f"lease's status for {now - since:.0f} s; the deployment was closed."
            ),
        )
    return WorkloadStatus(WorkloadState.STARTING)


def _endpoints(handle: Handle, status: dict[str, Any]) -> tuple[Endpoint, ...]:
    """The job's exposed ports: the HTTP one at its ingress host name, the others at the
    provider's forwarded host:port."""
    service = (status.get("services") or {}).get(sdl_module.SERVICE) or {}
    forwarded = (status.get("forwarded_ports") or {}).get(sdl_module.SERVICE) or []
    endpoints = []
    for port, external, _proto in handle["exposed"]:
        if external == 80 and service.get("uris"):
            endpoints.append(Endpoint(port, f"http://{service['uris'][0]}"))
            continue
        for entry in forwarded:
            if entry.get("port") in (port, external) and entry.get("host"):
                endpoints.append(Endpoint(port, f"http://{entry['host']}:{entry['externalPort']}"))
                break
    return tuple(endpoints)
