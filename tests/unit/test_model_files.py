"""swanlab_log_model, honest on every host: files are handed to SwanLab only where the host
keeps them; on SwanLab's public cloud (and any host that says it is not a private deployment)
their path, size and SHA-256 go into the run config instead, and the printed line says which.
A fake run and a fake swanlab module stand in for the client here; the real client against
the stand-in in both behaviours is in tests/e2e/test_watch_predictions_data.py."""
from __future__ import annotations

import hashlib
import sys
from types import SimpleNamespace

import pytest

from swanlab_autopatch import log
from swanlab_autopatch.config.settings import SwanLabSettings
from swanlab_autopatch.tracking import client, compat, model_files


class FakeRun:
    def __init__(self, mode: str) -> None:
        self.mode, self.saved = mode, []

    def save(self, path, base_path=None, policy="live"):
        self.saved.append((path, base_path, policy))


class FakeConfig(dict):
    def update(self, values=None, **kw):  # swanlab.config.update replaces top-level keys
        super().update(values or {}, **kw)


@pytest.fixture
def files(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"weights" * 1000)
    (out / "config.json").write_text("{}")
    (out / "checkpoint-5" / "model.safetensors").write_bytes(b"older")
    return out


@pytest.fixture
def client_run(monkeypatch):
    """client's state with a fake run in a mode, on a host; returns (run, config, asked)."""
    monkeypatch.setattr(log, "_said", set())
    asked = []

    def make(mode="online", host=None, private=None):
        run = FakeRun(mode)
        config = FakeConfig()
        monkeypatch.setitem(sys.modules, "swanlab", SimpleNamespace(config=config))
        monkeypatch.setattr(client._state, "run", run)
        monkeypatch.setattr(client._state, "finished", False)
        monkeypatch.setattr(client._state, "borrowed", False)
        monkeypatch.setattr(client._state, "files_kept", None)
        monkeypatch.setattr(client._state, "settings",
                            SwanLabSettings(swanlab_project="p", swanlab_api_host=host))
        monkeypatch.setattr(compat, "host_says_private", lambda: asked.append(1) or private)
        # The fake swanlab module has no internals to check: run.save counts as usable.
        monkeypatch.setattr(compat, "can_save", lambda run: hasattr(run, "save"))
        return run, config, asked

    return make


def _said(capsys) -> list[str]:
    return [l for l in capsys.readouterr().err.splitlines() if "output_dir" in l]


def test_public_cloud_records_instead_of_storing(files, client_run, capsys):
    run, config, asked = client_run()  # the default host: SwanLab's public cloud
    names = model_files.final_files(str(files))
    client.save_files(str(files), names, model_files.describe(str(files), names,
                                                             "the final model files of output_dir"))
    assert run.saved == [] and asked == []  # known by its address, nothing asked or offered
    final = config["model_files"]["final"]
    assert final["stored"] is False and final["host"] == "https://api.swanlab.cn"
    assert final["folder"] == str(files.resolve())
    assert final["files"]["model.safetensors"] == {
        "size": 7000, "sha256": hashlib.sha256(b"weights" * 1000).hexdigest()}
    assert set(final["files"]) == {"config.json", "model.safetensors"}
    (line,) = _said(capsys)
    assert "NOT stored" in line and "public cloud (https://api.swanlab.cn)" in line
    assert "model_files.final" in line and "(2 files," in line


def test_a_private_deployment_gets_the_files(files, client_run, capsys):
    run, config, asked = client_run(host="https://swan.internal", private=True)
    client.save_files(str(files), ["model.safetensors"], "the final model files of output_dir")
    client.save_files(str(files), ["config.json"], "the final model files of output_dir")
    assert [p for p, _, _ in run.saved] == [str(files / "model.safetensors"),
                                            str(files / "config.json")]
    assert asked == [1]  # asked once per run
    assert "model_files" not in config
    lines = _said(capsys)
    assert len(lines) == 2 and "https://swan.internal, a private deployment" in lines[0]


def test_a_host_that_says_it_is_not_private(files, client_run, capsys):
    run, config, _ = client_run(host="http://127.0.0.1:9", private=False)
    client.save_files(str(files), ["checkpoint-5/model.safetensors"],
                      "checkpoint-5 (1 files, 0.0 MB)")
    client.save_files(str(files), ["model.safetensors"], "the final model files of output_dir")
    assert run.saved == []
    assert set(config["model_files"]) == {"checkpoint-5", "final"}  # accumulated
    assert config["model_files"]["checkpoint-5"]["files"] == {
        "checkpoint-5/model.safetensors": {"size": 5,
                                           "sha256": hashlib.sha256(b"older").hexdigest()}}
    assert "says it is not a private SwanLab deployment" in _said(capsys)[0]


def test_a_host_that_cannot_be_asked_gets_both(files, client_run, capsys):
    run, config, _ = client_run(host="https://swan.internal", private=None)
    client.save_files(str(files), ["model.safetensors"], "the final model files of output_dir")
    assert len(run.saved) == 1
    assert config["model_files"]["final"]["stored"] is None
    assert "could not be asked" in _said(capsys)[0]


@pytest.mark.parametrize("mode", ["offline", "local"])
def test_offline_and_local_runs_record_the_files_for_sync(files, client_run, capsys, mode):
    run, config, asked = client_run(mode=mode)
    client.save_files(str(files), ["model.safetensors"], "the final model files of output_dir")
    assert len(run.saved) == 1 and asked == [] and "model_files" not in config
    assert "recorded for `swanlab sync`" in _said(capsys)[0]


def test_group_keys():
    assert model_files.group_key(["model.safetensors"]) == "final"
    assert model_files.group_key(["checkpoint-10/adapter_model.safetensors"]) == "checkpoint-10"
    assert model_files.group_key([]) == "final"
