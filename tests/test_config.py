from __future__ import annotations

import pytest

from vmimages.config import Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.database, s.load_default_catalog) == (
        "127.0.0.1",
        8080,
        "vmimages.db",
        True,
    )


def test_environment_then_flags() -> None:
    env = {
        "VMIMAGES_PORT": "9000",
        "VMIMAGES_DATABASE": "/tmp/x.db",
        "VMIMAGES_LOAD_DEFAULT_CATALOG": "false",
    }
    s = Settings.from_env(env, port=9100, host=None)
    assert (s.port, s.database, s.load_default_catalog, s.host) == (
        9100,
        "/tmp/x.db",
        False,
        "127.0.0.1",
    )


@pytest.mark.parametrize(
    ("name", "value"), [("VMIMAGES_PORT", "eighty"), ("VMIMAGES_ACCESS_LOG", "maybe")]
)
def test_bad_environment_is_named(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})
