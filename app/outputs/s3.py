"""The artifact store in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, moto...), spoken
with httpx and our own Signature V4 (app/outputs/sigv4.py).

`CORTEX_ARTIFACTS_URL=s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1`:
with `endpoint`, requests go path-style to it (`{endpoint}/{bucket}/{key}`); without, to AWS
(`https://{bucket}.s3.{region}.amazonaws.com/{key}`). `region` defaults to us-east-1.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from app.outputs import sigv4
from app.outputs.store import ArtifactError, ArtifactMissing, Download, check_key, check_size

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class BucketUrl:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str

    @classmethod
    def parse(cls, url: str) -> BucketUrl:
        """`s3://bucket/prefix?endpoint=...&region=...`; ValueError says what is wrong."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"{url!r}: write it as s3://bucket/prefix?endpoint=...&region=...")
        options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = sorted(set(options) - {"endpoint", "region"})
        if unknown:
            raise ValueError(f"{url!r}: unknown option {', '.join(unknown)} (endpoint, region)")
        endpoint = options.get("endpoint")
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError(f"{url!r}: endpoint must be an http(s) URL")
        prefix = parts.path.strip("/")
        return cls(
            bucket=parts.netloc,
            prefix=f"{prefix}/" if prefix else "",
            endpoint=endpoint.rstrip("/") if endpoint else None,
            region=options.get("region") or DEFAULT_REGION,
        )


class S3Store:
    def __init__(
        self,
        url: BucketUrl,
        access_key_id: str,
        secret_access_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.credentials = sigv4.Credentials(access_key_id, secret_access_key, url.region)
        if url.endpoint is not None:
            base, self._path_prefix = url.endpoint, f"/{quote(url.bucket)}"
        else:
            base, self._path_prefix = f"https://{url.bucket}.s3.{url.region}.amazonaws.com", ""
        self._client = httpx.AsyncClient(base_url=base, timeout=TIMEOUT, transport=transport)
        self.description = f"s3://{url.bucket}/{url.prefix} at {base}"

    def _request(
        self, method: str, key: str, headers: dict[str, str] | None = None
    ) -> httpx.Request:
        path = self._path_prefix + "/" + quote(self.url.prefix + check_key(key), safe="/-_.~")
        now = datetime.now(UTC)
        request_url = self._client.base_url.join(path)
        all_headers = {
            "host": request_url.netloc.decode(),
            "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
            "x-amz-content-sha256": sigv4.UNSIGNED_PAYLOAD
            if method == "PUT"
            else sigv4.EMPTY_SHA256,
            **(headers or {}),
        }
        all_headers["authorization"] = sigv4.authorization(
            self.credentials,
            method,
            request_url.raw_path.decode(),
            {},
            all_headers,
            all_headers["x-amz-content-sha256"],
            now,
        )
        return self._client.build_request(method, request_url, headers=all_headers)

    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int) -> None:
        check_size(size)
        request = self._request(
            "PUT",
            key,
            {"content-length": str(size), "content-type": "application/octet-stream"},
        )
        request.stream = _Body(chunks)
        with _errors(key):
            response = await self._client.send(request)
        if response.status_code != 200:
            raise ArtifactError(f"storing {key} answered {response.status_code}: {response.text}")

    async def open(self, key: str) -> Download:
        with _errors(key):
            response = await self._client.send(self._request("GET", key), stream=True)
        if response.status_code != 200:
            await response.aclose()
            if response.status_code == 404:
                raise ArtifactMissing(key)
            raise ArtifactError(f"reading {key} answered {response.status_code}")
        size = int(response.headers.get("content-length", "0"))

        async def chunks() -> AsyncIterator[bytes]:
            try:
                with _errors(key):
                    async for chunk in response.aiter_raw():
                        yield chunk
            finally:
                await response.aclose()

        return Download(size, chunks(), response.aclose)

    async def delete(self, key: str) -> None:
        with _errors(key):
            response = await self._client.send(self._request("DELETE", key))
        if response.status_code not in (200, 204, 404):
            raise ArtifactError(f"deleting {key} answered {response.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()


class _Body(httpx.AsyncByteStream):
    """The bytes of an upload, sent as they come (the Content-Length header says how many)."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk


@contextmanager
def _errors(key: str) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError as exc:
        raise ArtifactError(f"the artifact store is unreachable for {key}: {exc}") from exc
