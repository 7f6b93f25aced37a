"""Key providers and their configuration: every mistake named with where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

import batonflow as bf
from batonflow.configuration import Setup
from batonflow.governance import EnvKeys, KeyFile, MasterKeys
from batonflow.governance._keys import load_provider


def test_keys_round_trip_as_text_and_never_print() -> None:
    keys = MasterKeys.generate()
    assert MasterKeys.from_text(keys.to_text(), "here") == keys
    assert keys.master.hex() not in repr(keys)
    assert repr(keys) == f"MasterKeys(fingerprint={keys.fingerprint()!r})"
    with pytest.raises(bf.ConfigError, match=r"^\$X: not batonflow keys \(expected a line"):
        MasterKeys.from_text("hunter2", "$X")
    with pytest.raises(bf.ConfigError, match="expected 64 key bytes, found 3"):
        MasterKeys.from_text("bfkeys1:AAAA", "here")


def test_default_providers(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    provider = load_provider(None, "cfg", db)
    assert isinstance(provider, KeyFile)
    assert provider.path == Path(f"{db}.key")
    assert isinstance(load_provider(None, "cfg", "postgresql://x/y"), EnvKeys)
    assert isinstance(load_provider({"env": "SITE_KEYS"}, "cfg", db), EnvKeys)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"file": "a", "env": "B"}, 'cfg: expected one of file = "PATH", env = "VARIABLE"'),
        ({"file": ""}, "cfg.file: expected a non-empty string"),
        ({"vault": "x"}, "cfg.vault: unknown key"),
        ({"provider": "nomodule"}, "cfg.provider: expected 'module:factory'"),
        ({"provider": "no_such_module_xyz:make"}, "cfg.provider: cannot import"),
        ({"provider": "json:dumps"}, "cfg.provider: 'json:dumps'() failed"),
        ({"provider": "os:getcwd"}, "cfg.provider: 'os:getcwd' returned str, which lacks"),
    ],
)
def test_configuration_mistakes_are_named(table: dict[str, str], message: str) -> None:
    with pytest.raises(bf.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_provider(table, "cfg", "runs.db")


def test_setup_checks_the_keys_table(tmp_path: Path) -> None:
    config = tmp_path / "batonflow.toml"
    config.write_text("[governance.keys]\nfile = 3\n")
    with pytest.raises(bf.ConfigError, match=r"governance\.keys\.file: expected a non-empty"):
        Setup.load(str(config))
    config.write_text('[governance.subjects]\nmissing = "ignore"\n')
    with pytest.raises(bf.ConfigError, match=r'governance\.subjects\.missing: expected "refuse"'):
        Setup.load(str(config))


def test_an_environment_provider_cannot_be_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SITE_KEYS", raising=False)
    provider = EnvKeys("SITE_KEYS")
    assert provider.load() is None
    with pytest.raises(bf.ConfigError, match=r"\$SITE_KEYS is not set: generate keys with"):
        provider.create(MasterKeys.generate())
    keys = MasterKeys.generate()
    monkeypatch.setenv("SITE_KEYS", keys.to_text())
    assert provider.load() == keys


def test_error_texts_lose_personal_data_and_secrets_and_stay_json() -> None:
    import json

    from batonflow.governance._scrub import Scrubber

    scrub = Scrubber({"key": "supersecret"})
    error = json.dumps({"message": "401 for /contacts/jane@example.com?k=supersecret"})
    assert json.loads(scrub.error(error) or "") == {
        "message": "401 for /contacts/[email]?k=[secret:key]"
    }
    assert scrub.error(None) is None
    assert scrub.text("nothing here") == "nothing here"
    assert not Scrubber({"pin": "1234"})  # too short to mask safely: nothing to do
