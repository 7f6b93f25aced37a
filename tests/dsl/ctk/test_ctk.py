"""The Serverless Workflow conformance test kit (CTK), run from its own feature files.

Every scenario in ``v1.0.3/ctk/features`` is bound here (steps in ``conftest.py``); the ones
that call public hosts reach loopback servers that answer as those hosts would
(``tests/dsl/servers``), so nothing leaves the machine.
"""

from pytest_bdd import scenarios

from .harness import spec_path

scenarios(str(spec_path("v1.0.3", "ctk", "features")))
