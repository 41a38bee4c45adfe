"""What a new user meets when a setting is wrong: each error names what the user typed (the flag,
or the ONLSTM_* variable), a misspelt variable is warned about instead of silently ignored, and
the settings table of service/README.md lists every setting."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest
import torch

from onlstm.service.settings import OTHER_VARIABLES, Settings, SettingsError, load_settings, unknown_variables

from ..helpers import REPO


@pytest.mark.slow
def test_a_bad_flag_is_named_as_typed_and_a_misspelt_variable_is_warned_about(tmp_path):
    # the real start-up path: `onlstm serve`, run in a folder without a .env
    environment = {**os.environ, "ONLSTM_MAX_BODYBYTES": "5000"}
    result = subprocess.run([sys.executable, "-m", "onlstm", "serve", "--port", "99999"], capture_output=True,
                            text=True, cwd=tmp_path, env=environment, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "--port=99999: Input should be less than or equal to 65535" in result.stderr
    assert "ONLSTM_PORT" not in result.stderr
    assert "ONLSTM_MAX_BODYBYTES is not an onlstm setting and is ignored; did you mean ONLSTM_MAX_BODY_BYTES?" \
        in result.stderr


def test_an_environment_value_is_still_named_by_its_variable(monkeypatch):
    monkeypatch.setenv("ONLSTM_PORT", "99999")
    with pytest.raises(SettingsError, match=r"ONLSTM_PORT='99999': Input should be less than"):
        load_settings(flags={"host": "127.0.0.1"})


def test_a_device_without_a_gpu_is_reported_as_onlstm_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("ONLSTM_DEVICE", "cuda:1")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "ONLSTM_DEVICE='cuda:1': device 'cuda:1' was asked for but torch sees no CUDA GPU" in str(raised.value)
    assert "ONLSTM_SETTINGS" not in str(raised.value)


def test_unknown_names_are_warned_about_with_the_closest_known_one(monkeypatch, caplog, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ONLSTM_LOG_LEVL=debug\n")
    monkeypatch.setenv("onlstm_max_bodybytes", "5000")  # read case-insensitively, like the settings
    monkeypatch.setenv("ONLSTM_NATIVE", "0")  # known, though not a service setting
    monkeypatch.setenv("ONLSTM_ZZZ", "1")
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert settings.max_body_bytes == 1_000_000
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "ONLSTM_LOG_LEVL is not an onlstm setting and is ignored; did you mean ONLSTM_LOG_LEVEL?" in warned
    assert "onlstm_max_bodybytes is not an onlstm setting and is ignored; did you mean ONLSTM_MAX_BODY_BYTES?" \
        in warned
    assert "ONLSTM_ZZZ is not an onlstm setting and is ignored" in warned
    assert not any("ONLSTM_NATIVE" in message for message in warned)
    assert unknown_variables({"ONLSTM_PORT": "1", "ONLSTM_DATA": "x", "HOME": "/"}) == []


def test_the_service_readme_lists_every_setting():
    readme = (REPO / "service" / "README.md").read_text()
    rows = [name for line in readme.splitlines() if line.startswith("| `ONLSTM_")
            for name in re.findall(r"`(ONLSTM_[A-Z0-9_]+)`", line.split(" | ")[0])]
    table = set(rows)
    assert len(rows) == len(table), f"listed twice: {sorted({name for name in rows if rows.count(name) > 1})}"
    settings = {f"ONLSTM_{field.upper()}" for field in Settings.model_fields}
    assert settings <= table, f"not in service/README.md's settings table: {sorted(settings - table)}"
    assert table <= settings | set(OTHER_VARIABLES), f"not settings: {sorted(table - settings - set(OTHER_VARIABLES))}"
