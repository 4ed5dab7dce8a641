"""The provider registry: built-in names, lazy imports, plugins through entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from providers import registry
from providers.base import Provider
from providers.local import LocalProvider


def test_builtins_are_sorted_and_import() -> None:
    assert list(registry.BUILTIN_PROVIDERS) == sorted(registry.BUILTIN_PROVIDERS)
    for name in registry.BUILTIN_PROVIDERS:
        cls = registry.provider_class(name)
        assert cls is None or (issubclass(cls, Provider) and cls.name == name)
    assert registry.provider_class("local") is LocalProvider


def test_an_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(registry.UnknownProvider, match="akash, golem, local, render"):
        registry.provider_class("aws")


def test_a_plugin_registers_through_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "cortex_acme-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cortex-acme\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[cortex_gateway.providers]\nacme = acme_provider:AcmeProvider\n"
    )
    (tmp_path / "acme_provider.py").write_text(
        "from providers.local import LocalProvider\n"
        "class AcmeProvider(LocalProvider):\n    name = 'acme'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._plugins.cache_clear()
    registry.available_providers.cache_clear()
    try:
        assert "acme" in registry.available_providers()
        assert registry.provider_class("acme").__name__ == "AcmeProvider"  # type: ignore[union-attr]
    finally:
        sys.modules.pop("acme_provider", None)
        registry._plugins.cache_clear()
        registry.available_providers.cache_clear()
