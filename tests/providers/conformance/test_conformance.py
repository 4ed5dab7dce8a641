"""Our adapters against the conformance suite shipped in providers.conformance (see
README.md here): one class per network, every case in each."""

from __future__ import annotations

from providers.conformance.suite import ProviderConformance
from tests.providers.conformance import harness_akash, harness_golem, harness_local, harness_render


class TestAkashConformance(ProviderConformance):
    harness_class = harness_akash.HARNESS


class TestGolemConformance(ProviderConformance):
    harness_class = harness_golem.HARNESS


class TestLocalConformance(ProviderConformance):
    harness_class = harness_local.HARNESS


class TestRenderConformance(ProviderConformance):
    harness_class = harness_render.HARNESS
