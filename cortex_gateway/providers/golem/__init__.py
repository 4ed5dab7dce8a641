"""The Golem Network through a yagna requestor daemon's REST APIs."""

from cortex_gateway.providers.golem.adapter import GolemProvider

__all__ = ["GolemProvider"]
