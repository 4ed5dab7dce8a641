"""docker-compose.yml and the Dockerfile, checked as files (no container engine needed): the
services, their health checks, the gateway's environment and mounts, and what the image
build copies. README (Operations) says how the stack was really run with podman-compose."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from app import database
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_SETTINGS = ("local_", "akash_", "golem_", "render_")
_DEFAULTED = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with nothing set in the environment."""
    return _DEFAULTED.sub(lambda m: m.group(2) or "", value)


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """`KEY=value` entries with their value; bare `KEY` entries (passed through) as None."""
    entries = service.get("environment", {})
    if isinstance(entries, dict):
        return {k: None if v is None else interpolate(str(v)) for k, v in entries.items()}
    pairs = [entry.partition("=") for entry in entries]
    return {k: interpolate(v) if sep else None for k, sep, v in pairs}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


class TestCompose:
    def test_postgres_keeps_its_data_in_a_named_volume_and_has_a_health_check(
        self, compose: dict[str, Any]
    ) -> None:
        postgres = compose["services"]["postgres"]
        assert interpolate(postgres["image"]).startswith("postgres:")
        volumes = [interpolate(v).split(":") for v in postgres["volumes"]]
        assert ["postgres-data", "/var/lib/postgresql/data"] in volumes
        assert "postgres-data" in compose["volumes"]
        assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    def test_the_gateway_is_built_from_the_dockerfile_and_waits_for_postgres(
        self, compose: dict[str, Any]
    ) -> None:
        gateway = compose["services"]["gateway"]
        context = ROOT / gateway["build"]["context"]
        assert (context / gateway["build"].get("dockerfile", "Dockerfile")).is_file()
        assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert gateway["command"] == ["serve"], "serve applies the migrations on start"
        assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
        assert [interpolate(p).rpartition(":")[2] for p in gateway["ports"]] == ["8000"]

    def test_the_gateways_database_url_names_the_postgres_service(
        self, compose: dict[str, Any]
    ) -> None:
        env = environment(compose["services"]["gateway"])
        postgres = environment(compose["services"]["postgres"])
        url = make_url(database.normalize_url(env["DATABASE_URL"] or ""))
        assert url.drivername == "postgresql+asyncpg"
        assert (url.host, url.port) == ("postgres", 5432)
        assert (url.username, url.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert url.database == postgres["POSTGRES_DB"]

    def test_the_hosts_docker_socket_is_mounted_for_the_local_provider(
        self, compose: dict[str, Any]
    ) -> None:
        gateway = compose["services"]["gateway"]
        env = environment(gateway)
        socket = (env["DOCKER_HOST"] or "").removeprefix("unix://")
        mounts = {
            interpolate(v).split(":")[1]: interpolate(v).split(":")[0] for v in gateway["volumes"]
        }
        assert mounts[socket] == "/var/run/docker.sock"
        assert gateway["group_add"], "the unprivileged user joins the socket's group"

    def test_every_provider_setting_is_passed_through(self, compose: dict[str, Any]) -> None:
        env = environment(compose["services"]["gateway"])
        wanted = {
            f"CORTEX_{name.upper()}"
            for name in Settings.model_fields
            if name.startswith(PROVIDER_SETTINGS)
        }
        missing = sorted(wanted - set(env))
        assert not missing, f"add these to docker-compose.yml (gateway environment): {missing}"
        for name in wanted:
            assert env[name] is None, f"{name} is passed through, not set, by compose"

    def test_two_gateway_replicas_share_the_database_on_ports_of_their_own(
        self, compose: dict[str, Any]
    ) -> None:
        replicas = {
            name: service
            for name, service in compose["services"].items()
            if name.startswith("gateway")
        }
        assert sorted(replicas) == ["gateway", "gateway-2"]
        published = [interpolate(replica["ports"][0]) for replica in replicas.values()]
        assert len({port.rpartition(":")[0] for port in published}) == 2, published
        assert {port.rpartition(":")[2] for port in published} == {"8000"}
        # The same image, settings, probes and database: only the published port differs.
        first, second = ({k: v for k, v in r.items() if k != "ports"} for r in replicas.values())
        assert first == second
        env = environment(first)
        for name in ("CORTEX_WORKERS", "CORTEX_ROLE", "CORTEX_DIRECT_DATABASE_URL"):
            assert name in env and env[name] is None, f"{name} is passed through"

    def test_logs_are_json_and_the_metrics_token_comes_from_the_environment(
        self, compose: dict[str, Any]
    ) -> None:
        env = environment(compose["services"]["gateway"])
        assert env["CORTEX_LOG_FORMAT"] == "json"
        assert env["CORTEX_METRICS_TOKEN"] is None


class TestDockerfile:
    def test_slim_python_non_root_and_serving(self, dockerfile: list[str]) -> None:
        assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
        assert [line for line in dockerfile if line.startswith("FROM")][-1] == (
            "FROM ${PYTHON_IMAGE}"
        )
        users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
        assert users and users[-1] not in ("root", "0")
        assert 'ENTRYPOINT ["cortex-gateway"]' in dockerfile
        assert 'CMD ["serve"]' in dockerfile
        assert any("/readyz" in line for line in dockerfile if line.startswith("HEALTHCHECK"))

    def test_what_it_copies_exists_and_is_not_ignored(self, dockerfile: list[str]) -> None:
        ignore = (ROOT / ".dockerignore").read_text().splitlines()
        included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
        copied = [
            source
            for line in dockerfile
            if line.startswith("COPY ") and "--from=" not in line
            for source in line.split()[1:-1]
        ]
        assert copied
        for source in copied:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in included, f"{source} is excluded by .dockerignore"
