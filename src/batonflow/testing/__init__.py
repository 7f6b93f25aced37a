"""Test kit: a fake clock, and the conformance suite every Store must pass."""

from batonflow.testing._clock import FakeClock
from batonflow.testing._conformance import StoreConformance

__all__ = ["FakeClock", "StoreConformance"]
