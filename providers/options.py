"""What an operator may set for an adapter, as a typed model the adapter class owns.

An adapter declares `options_model = MyOptions`; the gateway reads `CORTEX_<NAME>_<FIELD>`
from its environment (for any registered name, built-in or plugin), validates it into that
model, and builds the adapter with `cls(**options.arguments())`. The model never reads the
environment itself: the gateway's settings do.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr


class ProviderOptions(BaseModel):
    """Base of every adapter's options; the field names are the constructor's keywords."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def arguments(self) -> dict[str, Any]:
        """The constructor's keyword arguments; secrets are handed over in the clear."""
        return {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in self
        }
