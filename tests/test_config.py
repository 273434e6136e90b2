"""Settings: where the secret key comes from."""

from __future__ import annotations

import pytest

from app import config, create_app


def _no_key_file(_instance_path):
    raise AssertionError("the key file was read or written")


def test_a_given_secret_key_leaves_the_key_file_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "_secret_key", _no_key_file)

    app = create_app(
        {"SECRET_KEY": "given", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/a.db"}
    )

    app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()
    assert app.config["SECRET_KEY"] == "given"


def test_without_a_secret_key_one_is_kept_in_the_instance_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)

    first = config.load(tmp_path)["SECRET_KEY"]
    second = config.load(tmp_path)["SECRET_KEY"]

    assert first == second and len(first) >= 48
    assert (tmp_path / "secret_key").read_text() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_the_environment_key_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")

    assert config.load(tmp_path)["SECRET_KEY"] == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("keyed", [True, False])
def test_load_writes_a_key_file_only_when_it_needs_one(monkeypatch, tmp_path, keyed):
    monkeypatch.delenv("SECRET_KEY", raising=False)

    config.load(tmp_path, keyed=keyed)

    assert (tmp_path / "secret_key").exists() is not keyed
