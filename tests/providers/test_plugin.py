"""A plugin adapter in a package of its own (tests/providers/plugin/acme_adapter), registered
by entry point and configured through its own CORTEX_ACME_* variables, passes the conformance
suite shipped in providers.conformance."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.admission.providers import ProviderSet
from app.settings import ProviderSettingsError, Settings
from providers import Handle, Provider, VolumeSpec, WorkloadSpec, registry
from providers.conformance import Harness, short_spec_fields
from providers.conformance.suite import ProviderConformance

PLUGIN_DIRECTORY = Path(__file__).parent / "plugin"


@pytest.fixture(autouse=True)
def acme_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if `pip install cortex-acme` had run: its dist-info and package on the path."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIRECTORY))
    registry._plugins.cache_clear()
    registry.available_providers.cache_clear()
    yield
    sys.modules.pop("acme_adapter", None)
    registry._plugins.cache_clear()
    registry.available_providers.cache_clear()


def networks() -> dict[str, Any]:
    from acme_adapter import NETWORKS  # type: ignore[import-not-found]

    return NETWORKS  # type: ignore[no-any-return]


class AcmeHarness(Harness):
    """Acme built the way the gateway builds it: by name, from CORTEX_ACME_* variables."""

    name = "acme"
    finish_within = 10.0

    def __init__(self) -> None:
        self.endpoint = f"acme://test-{secrets.token_hex(4)}"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        networks()[self.endpoint] = {}
        try:
            yield
        finally:
            networks().pop(self.endpoint, None)

    def _built(self, endpoint: str) -> Provider:
        variables = {"CORTEX_ACME_ENDPOINT": endpoint, "CORTEX_ACME_START_SECONDS": "0.1"}
        saved = {key: os.environ.get(key) for key in variables}
        os.environ.update(variables)
        try:
            options = Settings().provider_options("acme")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        cls = registry.provider_class("acme")
        assert cls is not None
        return cls(**options)

    def adapter(self) -> Provider:
        return self._built(self.endpoint)

    def unreachable_adapter(self) -> Provider:
        return self._built("acme://nowhere")

    def printing(
        self, job_id: str, lines: list[str], exit_code: int, pause: float = 0.0
    ) -> WorkloadSpec:
        env = {"ACME_LINES": json.dumps(lines), "ACME_EXIT": str(exit_code)}
        return WorkloadSpec(
            **short_spec_fields(job_id),  # type: ignore[arg-type]
            image="acme/printer:1",
            env={**env, "ACME_PAUSE": str(pause)},
        )

    def long_running(self, job_id: str) -> WorkloadSpec:
        spec = self.printing(job_id, ["up"], 0)
        return dataclasses.replace(spec, env={**spec.env, "ACME_SECONDS": "600"})

    def refused(self, job_id: str) -> list[tuple[WorkloadSpec, str]]:
        spec = self.printing(job_id, ["x"], 0)
        return [(dataclasses.replace(spec, volumes=(VolumeSpec("data", "/data"),)), "volumes")]

    def unknown_handle(self) -> Handle:
        return {"job": "job_000000000000"}

    async def held(self, job_id: str) -> list[str]:
        network = networks().get(self.endpoint, {})
        return [f"workload {job_id}"] if job_id in network else []


class TestAcmeConformance(ProviderConformance):
    harness_class = AcmeHarness


class TestAcmeSettings:
    def test_it_is_registered_by_its_entry_point(self) -> None:
        assert "acme" in registry.available_providers()
        cls = registry.provider_class("acme")
        assert cls is not None and cls.__module__ == "acme_adapter"

    def test_its_options_come_from_its_own_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORTEX_ACME_ENDPOINT", "acme://eu")
        monkeypatch.setenv("CORTEX_ACME_USD_PER_HOUR", "2.5")
        adapter = ProviderSet(Settings()).get("acme")
        assert adapter is not None
        assert (adapter.endpoint, adapter.usd_per_hour) == ("acme://eu", 2.5)  # type: ignore[attr-defined]

    def test_options_given_to_settings_win_over_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CORTEX_ACME_ENDPOINT", "acme://eu")
        options = Settings(acme_endpoint="acme://us").provider_options("acme")
        assert options["endpoint"] == "acme://us"

    def test_an_invalid_value_stops_start_up_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CORTEX_ACME_USD_PER_HOUR", "-1")
        with pytest.raises(ValueError, match="CORTEX_ACME_USD_PER_HOUR: Input should be greater"):
            Settings()
        with pytest.raises(ProviderSettingsError, match="CORTEX_ACME_USD_PER_HOUR"):
            Settings.model_construct().provider_options("acme")


class TestBuiltinSettings:
    def test_the_variables_keep_their_names(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORTEX_AKASH_API_KEY", "ac.sk.test")
        monkeypatch.setenv("CORTEX_AKASH_MAX_PRICE", "500")
        monkeypatch.setenv("CORTEX_LOCAL_PUBLISH_HOST", "0.0.0.0")
        monkeypatch.setenv("DOCKER_HOST", "unix:///run/elsewhere.sock")
        monkeypatch.setenv("CORTEX_RENDER_GPU_RATES", '{"NVIDIA RTX 4090": 0.35}')
        settings = Settings()
        akash = settings.provider_options("akash")
        assert (akash["api_key"], akash["max_price"]) == ("ac.sk.test", 500)
        local = settings.provider_options("local")
        assert local["publish_host"] == "0.0.0.0"
        assert local["docker_host"] == "unix:///run/elsewhere.sock"
        assert settings.provider_options("render")["gpu_rates"] == {"NVIDIA RTX 4090": 0.35}

    def test_an_invalid_builtin_value_names_its_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CORTEX_AKASH_BID_TIMEOUT", "soon")
        with pytest.raises(ValueError, match="CORTEX_AKASH_BID_TIMEOUT"):
            Settings()
