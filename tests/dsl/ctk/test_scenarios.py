"""Our own scenarios, in the CTK's vocabulary plus steps for time, events and crashes."""

from pathlib import Path

from pytest_bdd import scenarios

scenarios(str(Path(__file__).parents[1] / "features"))
