"""The conformance suite an adapter must pass, shipped with the package so that a plugin's
own tests can run it: `Harness` (what the suite needs from one network) and `Driver` here;
the pytest cases in `providers.conformance.suite` (which imports pytest: tests only)."""

from providers.conformance.harness import ENDED, Driver, Harness, short_spec_fields

__all__ = ["ENDED", "Driver", "Harness", "short_spec_fields"]
