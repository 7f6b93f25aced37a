"""Test kit: a fake clock, a scripted model provider, and the conformance suite every Store must
pass."""

from batonflow.testing._clock import FakeClock
from batonflow.testing._conformance import StoreConformance
from batonflow.testing._provider import ScriptedProvider

__all__ = ["FakeClock", "ScriptedProvider", "StoreConformance"]
