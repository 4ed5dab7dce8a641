"""A job, as the provider adapters see it."""

from __future__ import annotations

from typing import Any

from app.quantities import parse_bytes
from providers.types import GpuSpec, PortSpec, VolumeSpec, WorkloadSpec


def workload_spec(document: dict[str, Any]) -> WorkloadSpec:
    """From the job as the API shows it (camelCase JSON); the document travels along, to be
    placed at /cortex/spec/job.json inside the workload."""
    config = document.get("config") or {}
    command = config.get("command")
    args = config.get("args")
    gpu = config.get("gpu")
    return WorkloadSpec(
        job_id=document["id"],
        image=document["image"],
        cpu_millicores=document["cpu"],
        memory_bytes=parse_bytes(document["memory"]),
        storage_bytes=parse_bytes(document["storage"]),
        duration_seconds=document["duration"],
        env=dict(config.get("env") or {}),
        ports=tuple(
            PortSpec(p["port"], p.get("expose", False), p.get("protocol", "tcp"))
            for p in config.get("ports") or []
        ),
        volumes=tuple(
            VolumeSpec(
                v["name"],
                v["mountPath"],
                parse_bytes(v["size"]) if v.get("size") else None,
                v.get("readOnly", False),
            )
            for v in config.get("volumes") or []
        ),
        command=tuple(command) if command is not None else None,
        args=tuple(args) if args is not None else None,
        gpu=_gpu(gpu) if gpu else None,
        document=document,
    )


def _gpu(gpu: dict[str, Any]) -> GpuSpec:
    vram = gpu.get("minVram")
    return GpuSpec(
        count=gpu.get("count", 1),
        model=gpu.get("model"),
        min_vram_bytes=parse_bytes(vram) if vram else None,
    )
