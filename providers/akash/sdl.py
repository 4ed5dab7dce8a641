"""A job spec as an Akash SDL v2.0 document (built as data, dumped with a YAML library), and
the manifest the network derives from it.

The manifest matters twice: `POST /v1/leases` needs it, and its SHA-256 is the deployment's
on-chain `hash`, which is how a gateway that crashed between creating a deployment and
storing its handle finds that deployment again instead of creating a second one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from typing import Any

import yaml

from providers.spec_file import spec_env
from providers.types import Refusal, WorkloadSpec

SERVICE = "app"
PLACEMENT = "dcloud"
DENOM = "uact"
# The SDL needs at least one globally exposed port; a job that exposes none gets this one
# (nothing listens on it, and no endpoint is reported for it).
PLACEHOLDER_PORT = 80
# Printed by the wrapper once the job's own command ended, so the adapter can tell the exit
# code (Akash restarts a service whose process exits, and says nothing about exit codes).
EXIT_MARKER = "cortex-exit"
JOB_ID_ENV = "CORTEX_JOB_ID"

_BINARY_SUFFIXES = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
# Akash's SDL limits (https://akash.network/docs/.../akash-sdl/syntax-reference).
MIN_CPU_MILLICORES, MAX_CPU_MILLICORES = 10, 384_000
MIN_STORAGE_BYTES = 5 * 2**20


def refusals(spec: WorkloadSpec) -> list[Refusal]:
    """What this adapter cannot express in an SDL, beyond the capability checks (volumes:
    Akash storage belongs to the deployment's resources; named mounts are not mapped)."""
    found = []
    if not MIN_CPU_MILLICORES <= spec.cpu_millicores <= MAX_CPU_MILLICORES:
        found.append(
            Refusal("cpu", f"akash: cpu must be {MIN_CPU_MILLICORES}-{MAX_CPU_MILLICORES} m")
        )
    if spec.storage_bytes < MIN_STORAGE_BYTES:
        found.append(Refusal("storage", "akash: storage must be at least 5Mi"))
    for port in spec.ports:
        if port.protocol not in ("tcp", "udp"):
            found.append(Refusal("ports", f"akash: protocol {port.protocol} is not supported"))
    return found


def _size(value: int) -> str:
    for suffix, unit in _BINARY_SUFFIXES:
        if value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def waits_for_exit(spec: WorkloadSpec) -> bool:
    """Whether the job's end can be seen: only when the gateway knows the command to wrap."""
    return spec.command is not None


def _wrapped(spec: WorkloadSpec) -> tuple[list[str], list[str]]:
    """Run the job's command under a shell that reports its exit code in the log and then
    idles, so that the provider does not restart a finished job."""
    argv = [*(spec.command or ()), *(spec.args or ())]
    marker = shlex.quote(f"{EXIT_MARKER} {spec.job_id}")
    script = f'"$0" "$@"; code=$?; echo {marker} "$code"; while :; do sleep 3600; done'
    return ["/bin/sh", "-c"], [script, *argv]


def _exposes(spec: WorkloadSpec) -> list[dict[str, Any]]:
    exposes: list[dict[str, Any]] = []
    http_taken = False
    for port in spec.ports:
        if not port.expose:
            continue
        entry: dict[str, Any] = {"port": port.port}
        if port.protocol == "tcp" and not http_taken:
            # The first TCP port is served as HTTP through the provider's ingress (a host name).
            entry["as"] = 80
            http_taken = True
        else:
            entry["as"] = port.port
        if port.protocol == "udp":
            entry["proto"] = "udp"
        entry["to"] = [{"global": True}]
        exposes.append(entry)
    if not exposes:
        exposes.append({"port": PLACEHOLDER_PORT, "as": 80, "to": [{"global": True}]})
    return exposes


def build(spec: WorkloadSpec, max_price_uact: int) -> dict[str, Any]:
    """The SDL for `spec` as data."""
    service: dict[str, Any] = {"image": spec.image}
    if waits_for_exit(spec):
        service["command"], service["args"] = _wrapped(spec)
    elif spec.args is not None:
        service["args"] = list(spec.args)
    env = {**spec.env, **spec_env(spec), JOB_ID_ENV: spec.job_id}
    service["env"] = [f"{key}={value}" for key, value in env.items()]
    service["expose"] = _exposes(spec)
    return {
        "version": "2.0",
        "services": {SERVICE: service},
        "profiles": {
            "compute": {
                SERVICE: {
                    "resources": {
                        "cpu": {"units": spec.cpu_millicores / 1000},
                        "memory": {"size": _size(spec.memory_bytes)},
                        "storage": [{"size": _size(spec.storage_bytes)}],
                        **_gpu(spec),
                    }
                }
            },
            "placement": {
                PLACEMENT: {"pricing": {SERVICE: {"denom": DENOM, "amount": max_price_uact}}}
            },
        },
        "deployment": {SERVICE: {PLACEMENT: {"profile": SERVICE, "count": 1}}},
    }


def gpu_model(name: str) -> tuple[str, str]:
    """A model as jobs name it ("NVIDIA RTX 4090", "A100") -> Akash's vendor and model
    attribute names ("nvidia", "rtx4090")."""
    words = name.lower().split()
    vendor = "amd" if any(word in ("amd", "radeon", "instinct") for word in words) else "nvidia"
    model = "".join(word for word in words if word not in ("nvidia", "amd", "radeon", "instinct"))
    return vendor, "".join(ch for ch in model if ch.isalnum())


def _gpu(spec: WorkloadSpec) -> dict[str, Any]:
    if spec.gpu is None:
        return {}
    if spec.gpu.model is None and spec.gpu.min_vram_bytes is None:
        return {"gpu": {"units": spec.gpu.count, "attributes": {"vendor": {"nvidia": None}}}}
    vendor, model = gpu_model(spec.gpu.model) if spec.gpu.model else ("nvidia", "*")
    entry: dict[str, Any] = {"model": model}
    if spec.gpu.min_vram_bytes:
        entry["ram"] = _size(spec.gpu.min_vram_bytes)
    return {"gpu": {"units": spec.gpu.count, "attributes": {"vendor": {vendor: [entry]}}}}


def dump(sdl: dict[str, Any]) -> str:
    return yaml.safe_dump(sdl, sort_keys=False, default_flow_style=False)


# -- the manifest, as chain-sdk's generateManifest + manifestToSortedJSON make it -------------
# (ts/src/sdl/manifest/ in akash-network/chain-sdk; tests check it against that repository's
# own snapshot). Only what `build` writes is supported: one placement, services without
# params, credentials or leased IPs.

_PREFIXES = "kmgtpe"


def _bytes(size: str | int) -> int:
    text = str(size).lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    value = float(number)
    if unit and unit[0] in _PREFIXES:
        base = 1024 if unit.endswith("i") else 1000
        value *= base ** (_PREFIXES.index(unit[0]) + 1)
    return int(-(-value // 1))


def _js_number(value: float) -> str:
    """A number as JavaScript's toString writes it."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def _cpu_millis(units: float | str) -> str:
    if isinstance(units, str):
        text = units.lower()
        return _js_number(float(text[:-1]) if text.endswith("m") else float(text) * 1000)
    return _js_number(units * 1000)


def _manifest_gpu(gpu: dict[str, Any] | None) -> dict[str, Any]:
    """chain-sdk's transformGpuAttributes: `vendor/<vendor>/model/<model>[/ram/<ram>]`."""
    if not gpu or not gpu.get("units"):
        return {"units": {"val": "0"}}
    attributes = []
    vendors = (gpu.get("attributes") or {}).get("vendor") or {}
    for vendor in sorted(vendors):
        models = vendors[vendor]
        if not models:
            attributes.append({"key": f"vendor/{vendor}/model/*", "value": "true"})
            continue
        for model in models:
            key = f"vendor/{vendor}/model/{model['model']}"
            if model.get("ram"):
                key += f"/ram/{model['ram']}"
            if model.get("interface"):
                key += f"/interface/{model['interface']}"
            attributes.append({"key": key, "value": "true"})
    return {"units": {"val": str(gpu["units"])}, "attributes": attributes}


def _expose(entry: dict[str, Any], to: dict[str, Any]) -> dict[str, Any]:
    return {
        "port": entry["port"],
        "externalPort": entry.get("as", 0),
        "proto": str(entry.get("proto") or "tcp").upper(),
        "service": to.get("service") or "",
        "global": bool(to.get("global")),
        "hosts": entry.get("accept") or None,
        "httpOptions": {
            "maxBodySize": 1048576,
            "readTimeout": 60000,
            "sendTimeout": 60000,
            "nextTries": 3,
            "nextTimeout": 0,
            "nextCases": ["error", "timeout"],
        },
        "ip": "",
        "endpointSequenceNumber": 0,
    }


def _endpoints(service: dict[str, Any]) -> list[dict[str, Any]]:
    endpoints = []
    for entry in service.get("expose") or []:
        for to in entry.get("to") or []:
            if not to.get("global"):
                continue
            proto = str(entry.get("proto") or "tcp").upper()
            external = entry.get("as") or entry["port"]
            ingress = proto == "TCP" and external == 80
            # SHARED_HTTP is kind 0, which the manifest omits; RANDOM_PORT is 1.
            kind = {} if ingress else {"kind": 1}
            endpoints.append({**kind, "sequence_number": 0})
    return sorted(endpoints, key=lambda e: (e.get("kind", 0), e["sequence_number"]))


def manifest(sdl: dict[str, Any]) -> str:
    """The sorted-JSON manifest of `sdl`, byte for byte as Console returns it."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(sdl["deployment"]):
        service = sdl["services"][name]
        for placement, deployment in sdl["deployment"][name].items():
            resources = sdl["profiles"]["compute"][deployment["profile"]]["resources"]
            storage = resources["storage"]
            storage = storage if isinstance(storage, list) else [storage]
            expose = [
                _expose(entry, to)
                for entry in service.get("expose") or []
                for to in entry.get("to") or []
            ]
            expose.sort(key=lambda e: (e["service"], e["port"], e["proto"], not e["global"]))
            groups.setdefault(placement, []).append(
                {
                    "name": name,
                    "image": service["image"],
                    "command": service.get("command") or None,
                    "args": service.get("args") or None,
                    "env": service.get("env") or None,
                    "resources": {
                        "id": 1,
                        "cpu": {"units": {"val": _cpu_millis(resources["cpu"]["units"])}},
                        "memory": {"size": {"val": str(_bytes(resources["memory"]["size"]))}},
                        "storage": [
                            {
                                "name": volume.get("name") or "default",
                                "size": {"val": str(_bytes(volume["size"]))},
                            }
                            for volume in storage
                        ],
                        "gpu": _manifest_gpu(resources.get("gpu")),
                        "endpoints": _endpoints(service),
                    },
                    "count": deployment["count"],
                    "expose": expose,
                    "credentials": None,
                }
            )
    document = [{"name": name, "services": groups[name]} for name in sorted(groups)]
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def version(manifest_json: str) -> str:
    """The deployment `hash` Console shows for this manifest: base64 of its SHA-256."""
    return base64.b64encode(hashlib.sha256(manifest_json.encode()).digest()).decode()
