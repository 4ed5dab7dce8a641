"""The Golem Network through a yagna requestor daemon's REST APIs."""

from providers.golem.adapter import GolemProvider

__all__ = ["GolemProvider"]
