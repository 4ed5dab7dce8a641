"""What a job's container is: its create config, its labels, and how its native state reads
as a workload state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from providers.local.sandbox import Sandbox
from providers.spec_file import spec_env
from providers.types import Endpoint, FailureReason, WorkloadSpec, WorkloadState, WorkloadStatus

JOB_LABEL = "cortex.job"
MANAGED_LABEL = "cortex.managed"

STATES = {
    # Not the runtime's: a job whose image is being pulled has no container yet.
    "pulling": WorkloadState.PENDING,
    "created": WorkloadState.STARTING,
    "configured": WorkloadState.STARTING,
    "initialized": WorkloadState.STARTING,
    "running": WorkloadState.RUNNING,
    "paused": WorkloadState.RUNNING,
    "restarting": WorkloadState.RUNNING,
    "stopping": WorkloadState.RUNNING,
    "exited": WorkloadState.EXITED,
    "stopped": WorkloadState.EXITED,
    "removing": WorkloadState.EXITED,
    "dead": WorkloadState.FAILED,
}
# The job's status message in the states before the container runs.
WAITING = {
    "pulling": "pulling image",
    **dict.fromkeys(("created", "configured", "initialized"), "starting container"),
}
_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}
# SIGKILL's exit code. Under cgroup v1, podman reports an OOM kill as 137 with OOMKilled false.
_KILLED = 137


def container_config(
    spec: WorkloadSpec,
    volumes: list[str],
    publish_host: str,
    sandbox: Sandbox,
    *,
    limit_writable_layer: bool,
) -> dict[str, Any]:
    exposed = [port for port in spec.ports if port.expose]
    storage = spec.storage_bytes if limit_writable_layer else None
    config: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in {**spec.env, **spec_env(spec)}.items()],
        "Labels": {JOB_LABEL: spec.job_id, MANAGED_LABEL: "true"},
        "ExposedPorts": {f"{p.port}/{p.protocol}": {} for p in spec.ports},
        "HostConfig": {
            "NanoCpus": spec.cpu_millicores * 1_000_000,
            "Memory": spec.memory_bytes,
            # Equal to Memory: no swap beyond the memory limit.
            "MemorySwap": spec.memory_bytes,
            "NetworkMode": sandbox.network_for(bool(exposed)),
            "PortBindings": {
                f"{p.port}/{p.protocol}": [{"HostIp": publish_host, "HostPort": ""}]
                for p in exposed
            },
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": volume_name,
                    "Target": volume.mount_path,
                    "ReadOnly": volume.read_only,
                }
                for volume, volume_name in zip(spec.volumes, volumes, strict=True)
            ],
            **sandbox.host_config(storage),
        },
    }
    if spec.command is not None:
        config["Entrypoint"] = list(spec.command)
        config["Cmd"] = list(spec.args or [])
    elif spec.args is not None:
        config["Cmd"] = list(spec.args)
    return config


def endpoints(info: dict[str, Any], publish_host: str) -> tuple[Endpoint, ...]:
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    endpoints = []
    for key, bindings in sorted(ports.items()):
        port, _, protocol = key.partition("/")
        for binding in bindings or []:
            if binding.get("HostPort") and protocol == "tcp":
                host = binding.get("HostIp") or publish_host
                if host in ("0.0.0.0", ""):
                    host = "127.0.0.1"
                endpoints.append(Endpoint(int(port), f"http://{host}:{binding['HostPort']}"))
                break
    return tuple(endpoints)


def exited(code: int, started_at: datetime | None, *, oom_killed: bool = False) -> WorkloadStatus:
    if oom_killed or code == _KILLED:
        return WorkloadStatus(
            WorkloadState.EXITED,
            exit_code=code,
            reason=FailureReason.OOM,
            message="killed: out of memory (or sent SIGKILL by someone else)",
            started_at=started_at,
        )
    return WorkloadStatus(
        WorkloadState.EXITED,
        exit_code=code,
        reason=FailureReason.EXIT_CODE if code else None,
        message=f"exited with code {code}" if code else None,
        started_at=started_at,
    )
