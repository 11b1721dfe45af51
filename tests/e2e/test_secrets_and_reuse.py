"""Secrets never leave; one process can train twice; the user's own SwanLab use is respected."""
from __future__ import annotations

import json
import subprocess
import textwrap
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
import threading

import pytest

from e2e_support import harness, messages, only_run, wait_until
from swanlab_autopatch.runs.reader import find_runs

INJECTIONS = Path(__file__).resolve().parent / "injections"
CANARY = "canary-Secret-8f3e2a91c4"


def every_byte_without(canary: str, result, extra_folders=()) -> list[str]:
    """Places that contain the canary: stdout, stderr, every file of the training folder
    (output_dir with Axolotl's debug.log, the SwanLab run folder) except the user's own YAML."""
    found = []
    if canary in result.stdout:
        found.append("stdout")
    if canary in result.stderr:
        found.append("stderr")
    for folder in (result.run_dir, *extra_folders):
        for path in Path(folder).rglob("*"):
            if path.is_file() and path.name not in ("cfg.yaml", ".netrc") and \
                    canary.encode() in path.read_bytes():  # the user's own files
                found.append(str(path))
    return found


@pytest.mark.parametrize("where", ["yaml", "environment"])
def test_api_key_canary_appears_nowhere(trainer, where):
    if where == "yaml":
        result = trainer.run(swanlab_project="secret", swanlab_api_key=CANARY)
    else:
        result = trainer.run(env={"SWANLAB_API_KEY": CANARY}, swanlab_project="secret")
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)  # cloud could not start (no network): recorded offline
    assert run.series("train/loss")
    assert CANARY not in json.dumps(run.config)
    assert every_byte_without(CANARY, result) == []


def test_lark_notification_fires_for_this_run_and_stays_secret(trainer):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"code": 0}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/hook/{CANARY}"
    try:
        result = trainer.run(env={"SWANLAB_MODE": "offline"}, swanlab_project="lark",
                             swanlab_lark_webhook_url=url, swanlab_lark_secret=CANARY + "-sign")
        assert result.returncode == 0, result.describe()
        # Sent when the run finishes, in the helper process (which may finish it after the
        # training exited, when that took longer than its bound on a busy machine).
        wait_until(lambda: received, 180, "the Lark webhook call")
    finally:
        server.shutdown()
    assert len(received) == 1, received
    assert "sign" in received[0]  # signed with the secret
    run = only_run(result.log_dir)
    assert run.state == "finished"
    assert every_byte_without(CANARY, result) == []


def _python_api_script(body: str) -> str:
    return textwrap.dedent("""
        import sys
        from axolotl.cli.train import do_cli

        def main():
        {body}

        if __name__ == "__main__":
            main()
    """).format(body=textwrap.indent(textwrap.dedent(body), "    "))


def _run_script(trainer, folder: Path, script: str, env=None) -> harness.TrainResult:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "script.py"
    path.write_text(script)
    proc = subprocess.run([trainer.python(), str(path)], cwd=folder, capture_output=True,
                          text=True, timeout=900,
                          env=harness.training_env(trainer.venv, env,
                                                   swanlab_root=folder / ".swanlab-root"))
    return harness.TrainResult([str(path)], proc.returncode, proc.stdout, proc.stderr, 0.0, folder)


def test_two_trainings_in_one_process_give_two_finished_runs(trainer, tmp_path):
    folder = tmp_path / "api"
    configs = []
    for name in ("first", "second"):
        cfg = trainer.config(folder / name, swanlab_project=f"api-{name}", swanlab_mode="offline",
                             swanlab_log_dir=str(folder / "swanlog"))
        configs.append(str(harness.write_config(folder / name / "cfg.yaml", cfg)))
    body = "".join(f"do_cli(config={path!r})\n" for path in configs)
    result = _run_script(trainer, folder, _python_api_script(body))
    assert result.returncode == 0, result.describe()
    runs = sorted(find_runs(folder / "swanlog"), key=lambda r: r.project)
    assert [r.project for r in runs] == ["api-first", "api-second"]
    assert all(r.state == "finished" for r in runs)
    for run, name in zip(runs, ("first", "second")):
        assert run.series("train/loss") == harness.trainer_losses(folder / name)


def test_a_run_started_by_user_code_is_reused_and_user_logs_land_in_it(trainer, tmp_path):
    folder = tmp_path / "borrow"
    cfg = trainer.config(folder, swanlab_project="from-yaml", swanlab_mode="offline")
    path = harness.write_config(folder / "cfg.yaml", cfg)
    body = f"""
        import swanlab
        swanlab.init(project="user-started", mode="offline", log_dir="swanlog")
        do_cli(config={str(path)!r})
        swanlab.log({{"custom/after": 1.0}})
        swanlab.finish()
    """
    result = _run_script(trainer, folder, _python_api_script(body),
                         env={"PYTHONPATH": str(INJECTIONS / "user_code")})
    assert result.returncode == 0, result.describe()
    run = only_run(folder / "swanlog")
    assert run.project == "user-started"
    assert run.series("train/loss") == harness.trainer_losses(folder)
    assert [s for s, _ in run.series("custom/user_metric")] == list(range(1, 11))
    assert run.series("custom/after")
    assert any("already active in this process" in l for l in messages(result))


@pytest.mark.parametrize("fail", ["init", "run"])
def test_errors_quoting_secrets_never_leak(trainer, fail):
    """SwanLab's init (or its log and finish) and a Trainer event raise errors that quote every
    kind of secret: none of their bytes reaches stdout, stderr, the run or the output folder."""
    yaml_key, env_secret, saved_key = "yaml-CANARY-11aa22", "env-CANARY-33bb44", "netrc-CANARY-55cc"
    hook = "https://open.feishu.cn/open-apis/bot/v2/hook/hook-CANARY-66dd"
    lark_secret, host_password = "lark-CANARY-77ee88", "hostpw-CANARY-99ff"
    secrets = [yaml_key, env_secret, saved_key, hook, lark_secret,
               f"https://user:{host_password}@swan.example.invalid"]
    root = trainer.root / f"secrets-{fail}"
    (root / ".swanlab-root").mkdir(parents=True, exist_ok=True)
    (root / ".swanlab-root" / ".netrc").write_text(
        f"machine https://api.swanlab.cn\n\tlogin https://swanlab.cn\n\tpassword {saved_key}\n")
    result = trainer.run(
        name=f"secrets-{fail}", swanlab_project="secret-errors", swanlab_mode="offline",
        swanlab_api_key=yaml_key, swanlab_lark_webhook_url=hook, swanlab_lark_secret=lark_secret,
        env={"PYTHONPATH": str(INJECTIONS / "secret_errors"), "INJECT_FAIL": fail,
             "INJECT_SECRETS": json.dumps(secrets), "HF_TOKEN": env_secret})
    assert result.returncode == 0, result.describe()
    lines = messages(result)
    assert any("leaking ***" in line for line in lines), lines  # the errors were reported
    for secret in (yaml_key, env_secret, saved_key, "hook-CANARY-66dd", lark_secret,
                   host_password):
        assert every_byte_without(secret, result) == [], secret


def test_user_swanlab_calls_during_training_land_in_the_packages_run(trainer, tmp_path):
    """The run lives in the helper process; the user's code in the training process still
    reaches it through SwanLab's own functions: swanlab.log every step, swanlab.get_run() with
    its id and folder, a config value and a log call on the run object."""
    report = tmp_path / "user-code.json"
    result = trainer.run(env={"PYTHONPATH": str(INJECTIONS / "user_code_during_training"),
                              "USER_CODE_REPORT": str(report), "SWANLAB_MODE": "offline"},
                         swanlab_project="user-calls")
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.state == "finished", (run.state, run.error)
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    assert run.series("custom/user_metric") == [(s, float(s)) for s in range(1, 11)]
    assert run.series("custom/from_get_run") == [(3, 3.0)]
    seen = json.loads(report.read_text())
    assert seen["has_run"] is True and seen["id"] == run.run_id, (seen, run.run_id)
    assert Path(seen["dir"]).resolve() == run.path.resolve(), (seen, run.path)
    assert run.config.get("user_note") == "set during training", sorted(run.config)
    assert not any("helper process" in l for l in messages(result)), messages(result)
