"""A minimal container registry (the Docker Registry HTTP API v2, read-only) serving one image
built from the runtime's own busybox:latest (the tests' offline image, exported through the
Docker API), so that the real container runtime can pull without a network. Its layer can be
sent slowly, to watch a pull in progress, or cut off.

The runtime verifies a registry's certificate, so it is served over TLS with a throwaway CA
that `trusted_by_runtime` places in the runtime's `certs.d/<host:port>/` for as long as the
registry lives: a directory only this registry's address uses, nothing others depend on.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import hashlib
import io
import ipaddress
import json
import secrets
import shutil
import socket
import ssl
import tarfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

BUSYBOX = "docker.io/library/busybox:latest"
CERTS_D = Path("/etc/containers/certs.d")
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def busybox_layers(runtime: httpx.AsyncClient) -> list[bytes]:
    """The layer tars of the runtime's busybox image (`GET /images/{name}/get`)."""
    response = await runtime.get(f"http://docker/v1.41/images/{BUSYBOX}/get")
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        manifest = archive.extractfile("manifest.json")
        assert manifest is not None
        names = json.loads(manifest.read())[0]["Layers"]
        return [archive.extractfile(name).read() for name in names]  # type: ignore[union-attr]


def _layer(rootfs: list[bytes], marker: str) -> tuple[bytes, bytes]:
    """The busybox root filesystem in one layer, plus one file naming this registry, so that
    every registry's layer is new to the runtime (a layer it already holds would not be
    pulled). Returns (uncompressed tar, gzipped tar)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for layer in rootfs:
            with tarfile.open(fileobj=io.BytesIO(layer)) as source:
                for member in source.getmembers():
                    content = source.extractfile(member) if member.isfile() else None
                    tar.addfile(member, content)
        content = marker.encode()
        info = tarfile.TarInfo("cortex-registry-marker")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
        # Padding that does not compress, so the pull has megabytes to report.
        padding = secrets.token_bytes(4 * 2**20)
        info = tarfile.TarInfo("cortex-registry-padding")
        info.size = len(padding)
        tar.addfile(info, io.BytesIO(padding))
    raw = out.getvalue()
    return raw, gzip.compress(raw, compresslevel=1, mtime=0)


@dataclass
class Image:
    repository: str
    tag: str
    config: bytes
    layer: bytes
    manifest: bytes

    @classmethod
    def busybox(cls, rootfs: list[bytes], repository: str, tag: str) -> Image:
        """busybox as `repository:tag`, from `busybox_layers`."""
        raw, layer = _layer(rootfs, secrets.token_hex(8))
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]},
            }
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": CONFIG, "size": len(config), "digest": _digest(config)},
                "layers": [{"mediaType": LAYER, "size": len(layer), "digest": _digest(layer)}],
            }
        ).encode()
        return cls(repository, tag, config, layer, manifest)


@dataclass
class Registry:
    """What the registry serves and how: `seconds_per_layer` spreads the layer's bytes over
    that long; `cut_layer` ends the layer's answer halfway (the pull fails)."""

    images: list[Image] = field(default_factory=list)
    seconds_per_layer: float = 0.0
    cut_layer: bool = False
    address: str = ""
    layer_requests: int = 0

    def reference(self, image: Image) -> str:
        return f"{self.address}/{image.repository}:{image.tag}"

    def app(self) -> Starlette:
        async def root(request: Request) -> Response:
            return JSONResponse({})

        async def manifest(request: Request) -> Response:
            name, reference = request.path_params["name"], request.path_params["reference"]
            for image in self.images:
                if image.repository == name and reference in (image.tag, _digest(image.manifest)):
                    headers = {"Docker-Content-Digest": _digest(image.manifest)}
                    if request.method == "HEAD":
                        headers["Content-Length"] = str(len(image.manifest))
                        return Response(media_type=MANIFEST, headers=headers)
                    return Response(image.manifest, media_type=MANIFEST, headers=headers)
            return JSONResponse({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status_code=404)

        async def blob(request: Request) -> Response:
            digest = request.path_params["digest"]
            for image in self.images:
                if digest == _digest(image.config):
                    return Response(image.config, media_type="application/octet-stream")
                if digest == _digest(image.layer):
                    self.layer_requests += 1
                    return self._layer_response(image.layer)
            return JSONResponse({"errors": [{"code": "BLOB_UNKNOWN"}]}, status_code=404)

        return Starlette(
            routes=[
                Route("/v2/", root),
                Route("/v2/{name:path}/manifests/{reference}", manifest, methods=["GET", "HEAD"]),
                Route("/v2/{name:path}/blobs/{digest}", blob, methods=["GET", "HEAD"]),
            ]
        )

    def _layer_response(self, layer: bytes) -> Response:
        chunks = 40
        size = -(-len(layer) // chunks)
        pause = self.seconds_per_layer / chunks
        cut = self.cut_layer

        async def body() -> AsyncIterator[bytes]:
            for index in range(chunks):
                if cut and index == chunks // 2:
                    raise ConnectionResetError("the registry cuts the layer off")
                await asyncio.sleep(pause)
                yield layer[index * size : (index + 1) * size]

        return StreamingResponse(
            body(),
            media_type="application/octet-stream",
            headers={"Content-Length": str(len(layer))},
        )


def _certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 it signed: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)

    def build(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cortex test registry CA")])
    ca = build("cortex test registry CA", ca_key, ca_name, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextmanager
def trusted_by_runtime(address: str, ca: Path) -> Iterator[None]:
    directory = CERTS_D / address
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except PermissionError as exc:
        # The container runtime that scripts/container-runtime provides is a rootful podman.
        raise AssertionError(
            f"trusting a test registry needs {CERTS_D} writable (a rootful podman)"
        ) from exc
    shutil.copy(ca, directory / "ca.crt")
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def serve(registry: Registry, directory: Path) -> AsyncIterator[Registry]:
    ca, cert, key = _certificate(directory)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(
        registry.app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    registry.address = f"127.0.0.1:{port}"
    try:
        with trusted_by_runtime(registry.address, ca):
            yield registry
    finally:
        server.should_exit = True
        await task
