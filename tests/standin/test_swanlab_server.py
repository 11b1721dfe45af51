"""The SwanLab server stand-in (tools/swanlab_server.py), driven by the real swanlab client.

Every test starts its own stand-in on a free port and runs the real client (the swanlab
installed in this Python) in subprocesses with HOME/SWANLAB_ROOT in a tmp folder, then checks
what the stand-in recorded. A missing swanlab fails the tests; nothing is skipped.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("swanlab_server", REPO / "tools" / "swanlab_server.py")
standin_mod = importlib.util.module_from_spec(_spec)
sys.modules["swanlab_server"] = standin_mod
_spec.loader.exec_module(standin_mod)
StandIn = standin_mod.StandIn
username_for_key = standin_mod.username_for_key
load_dump = standin_mod.load_dump

KEY = "sk-standin-test-0123456789abcdef"
KEY2 = "sk-standin-second-key-fedcba987654"
WRONG_KEY = "sk-not-a-key-anyone-gave-out-000"
AUTH_ERROR = "Failed to initialize the SwanLab client. Please check if the provided API key is correct."

# Generous: a client subprocess that takes seconds on a quiet machine can take a minute on a busy one.
pytestmark = pytest.mark.timeout(300)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def _swanlab_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import swanlab; print(swanlab.__version__)"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"swanlab is not importable in {sys.executable}: {out.stderr[-2000:]}"
    return out.stdout.strip()


@pytest.fixture(scope="session")
def swanlab_version() -> str:
    version = _swanlab_version()
    # The stand-in speaks to every client the package supports (0.8, 0.9 and 0.10).
    assert version.startswith(("0.8.", "0.9.", "0.10.")), f"unsupported swanlab {version}"
    return version


@pytest.fixture
def server(tmp_path, swanlab_version):
    s = StandIn(tmp_path / "store", api_keys=[KEY, KEY2])
    s.start()
    try:
        yield s
    finally:
        s.stop()


def client_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWANLAB_")
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update({"HOME": str(home), "SWANLAB_ROOT": str(home / ".swanlab"), "AXOLOTL_DO_NOT_TRACK": "1",
                "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1", "SWANLAB_INTERACTIVE": "false"})
    env.update(extra)
    return env


PRELUDE = """
import json, os, sys, time
import swanlab
def out(**kw):
    print("RESULT " + json.dumps(kw), flush=True)
"""


def write_script(tmp_path: Path, name: str, body: str) -> Path:
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    path = scripts / f"{name}.py"
    path.write_text(PRELUDE + textwrap.dedent(body))
    return path


def workdir(tmp_path: Path) -> Path:
    w = tmp_path / "work"
    w.mkdir(exist_ok=True)
    return w


def run_client(tmp_path: Path, name: str, body: str, *args: str, env: dict | None = None,
               timeout: float = 90, expect_ok: bool = True) -> subprocess.CompletedProcess:
    script = write_script(tmp_path, name, body)
    proc = subprocess.run([sys.executable, str(script), *args], cwd=workdir(tmp_path),
                          env=env or client_env(tmp_path), capture_output=True, text=True, timeout=timeout)
    if expect_ok:
        assert proc.returncode == 0, f"client script {name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def start_client(tmp_path: Path, name: str, body: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    script = write_script(tmp_path, name, body)
    return subprocess.Popen([sys.executable, str(script), *args], cwd=workdir(tmp_path),
                            env=env or client_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def results(proc_output: str) -> list:
    return [json.loads(line[len("RESULT "):]) for line in proc_output.splitlines() if line.startswith("RESULT ")]


def swanlab_cli(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swanlab", *args], cwd=workdir(tmp_path),
                          env=env or client_env(tmp_path), capture_output=True, text=True, timeout=timeout)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def only_experiment(dump: dict) -> dict:
    assert len(dump["experiments"]) == 1, [(e["workspace"], e["project"], e["id"]) for e in dump["experiments"]]
    return dump["experiments"][0]


def user_metrics(exp: dict) -> dict:
    """Scalars the script logged (the client also sends system metrics under __swanlab__.)."""
    return {k: v for k, v in exp["metrics"].items() if not k.startswith("__swanlab__")}


def offline_run_dir(tmp_path: Path) -> Path:
    dirs = sorted((workdir(tmp_path) / "offline-logs").glob("run-*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


ONLINE_RUN = """
url, key = sys.argv[1], sys.argv[2]
swanlab.login(api_key=key, host=url, save=False)
run = swanlab.init(mode="online", project="proj-a", workspace="team-a", name="first-run",
                   description="a run for the stand-in", config={"lr": 0.001, "epochs": 3, "opt": {"name": "adamw"}},
                   tags=["tag-one", "tag-two"], group="grp", job_type="sft")
for step, loss in ((1, 6.17), (2, 6.04), (3, 5.5)):
    swanlab.log({"train/loss": loss, "train/lr": 0.001 * step}, step=step)
swanlab.log({"samples/text": swanlab.Text("the quick brown fox")}, step=2)
import numpy as np
swanlab.log({"samples/image": swanlab.Image(np.full((4, 6, 3), 200, dtype=np.uint8))}, step=3)
with open("notes.txt", "w") as f:
    f.write("saved by run.save\\n")
run.save("notes.txt", policy="now")
print("a console line from the script")
swanlab.finish()
out(id=run.id)
"""


# ------------------------------------------------------------------------------------------------
# login
# ------------------------------------------------------------------------------------------------

LOGIN = """
url, key = sys.argv[1], sys.argv[2]
try:
    swanlab.login(api_key=key, host=url, save=False)
except Exception as e:
    out(ok=False, error=type(e).__name__, message=str(e))
else:
    from swanlab.sdk.internal.core_python import client
    out(ok=True, username=client.username())
"""


def test_login_ok_and_wrong_key_refused(server, tmp_path):
    ok = results(run_client(tmp_path, "login_ok", LOGIN, server.url, KEY2).stdout)
    assert ok == [{"ok": True, "username": username_for_key(KEY2)}]

    bad = results(run_client(tmp_path, "login_bad", LOGIN, server.url, WRONG_KEY).stdout)
    assert bad == [{"ok": False, "error": "AuthenticationError", "message": AUTH_ERROR}]

    logins = [r for r in server.requests() if r["path"] == "/api/login/api_key"]
    assert [(r["key"], r["status"]) for r in logins] == [("key#2", 200), ("key:unknown", 401)]
    # 401 is not retried by the client: exactly one attempt for the wrong key
    assert all(r["headers"].get("authorization") in ("key#2", "key:unknown") for r in logins)
    # no key, right or wrong, is stored anywhere in the store
    server.stop()
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for key in (KEY, KEY2, WRONG_KEY):
                assert key.encode() not in data, f"{key} leaked into {path}"
    assert load_dump(tmp_path / "store")["users"] == [
        {"key": "key#2", "username": username_for_key(KEY2), "logins": 1}]


def test_refuse_login_switch_from_command_line(tmp_path, swanlab_version):
    with StandIn(tmp_path / "store", api_keys=[KEY], extra_args=["--refuse-login"]) as s:
        bad = results(run_client(tmp_path, "refused", LOGIN, s.url, KEY).stdout)
        assert bad == [{"ok": False, "error": "AuthenticationError", "message": AUTH_ERROR}]
        assert s.get_faults()["refuse_login"] is True
        s.clear_faults()
        ok = results(run_client(tmp_path, "after_clear", LOGIN, s.url, KEY).stdout)
        assert ok == [{"ok": True, "username": username_for_key(KEY)}]
        assert [(r["key"], r["status"]) for r in s.requests()] == [("key#1", 401), ("key#1", 200)]


# ------------------------------------------------------------------------------------------------
# a whole online run
# ------------------------------------------------------------------------------------------------

def test_online_run_records_everything(server, tmp_path):
    run_id = results(run_client(tmp_path, "online", ONLINE_RUN, server.url, KEY).stdout)[0]["id"]
    dump = server.dump()
    exp = only_experiment(dump)
    assert (exp["workspace"], exp["project"], exp["id"], exp["name"]) == ("team-a", "proj-a", run_id, "first-run")
    assert exp["description"] == "a run for the stand-in"
    assert exp["config"] == {"lr": 0.001, "epochs": 3, "opt": {"name": "adamw"}}
    assert (exp["tags"], exp["group"], exp["job_type"]) == (["tag-one", "tag-two"], "grp", "sft")
    assert exp["color"] and exp["color"].startswith("#")
    assert exp["state"] == "FINISHED" and exp["states_received"] == ["FINISHED"]
    assert user_metrics(exp) == {"train/loss": [[1, 6.17], [2, 6.04], [3, 5.5]],
                                 "train/lr": [[1, 0.001], [2, 0.002], [3, 0.003]]}
    text = exp["media"]["samples/text"]
    assert [(m["step"], m["type"], m["text"]) for m in text] == [(2, "text", ["the quick brown fox"])]
    image = exp["media"]["samples/image"]
    assert [(m["step"], m["type"]) for m in image] == [(3, "image")]
    assert image[0]["files"][0]["stored"] and image[0]["files"][0]["size"] > 0
    assert image[0]["files"][0]["path"].endswith(".png")
    notes = [f for f in exp["files"] if f["name"] == "notes.txt"]
    assert len(notes) == 1 and notes[0]["state"] == "UPLOADED"
    assert notes[0]["size"] == len("saved by run.save\n") and notes[0]["content_matches_md5"]
    assert any(line["message"] == "a console line from the script" for line in exp["logs"])
    assert set(exp["profile"]) >= {"metadata", "requirements", "config"}
    assert exp["profile"]["metadata"]["swanlab"]["version"].startswith("0.10.")
    assert (exp["created_count"], exp["resumed_count"], exp["duplicates"]) == (1, 0, [])
    assert exp["heartbeats"] >= 1
    assert dump["unimplemented"] == []
    project = [p for p in dump["projects"] if p["name"] == "proj-a"][0]
    columns = {c["key"]: c["type"] for c in project["columns"]}
    assert {k: columns.get(k) for k in ("train/loss", "samples/text", "samples/image")} == {
        "train/loss": "FLOAT", "samples/text": "TEXT", "samples/image": "IMAGE"}
    # the stored image is the PNG the client rendered
    reqs = server.requests()
    puts = [r for r in reqs if r["method"] == "PUT" and r["path"].endswith(".png")]
    assert len(puts) == 1 and puts[0]["body_size"] == image[0]["files"][0]["size"]
    # every API request but the login and the presigned PUTs carried the session of key#1
    assert {r["key"] for r in reqs if r["path"].startswith("/api/")} == {"key#1"}


def test_default_workspace_is_the_users_and_env_login(server, tmp_path):
    body = """
    run = swanlab.init(project="from-env", name="env-run")
    swanlab.log({"x": 1.5}, step=7)
    swanlab.finish()
    out(id=run.id)
    """
    env = client_env(tmp_path, SWANLAB_API_HOST=server.url, SWANLAB_WEB_HOST=server.url, SWANLAB_API_KEY=KEY2)
    run_client(tmp_path, "env_run", body, env=env)
    exp = only_experiment(server.dump())
    assert (exp["workspace"], exp["project"], exp["name"]) == (username_for_key(KEY2), "from-env", "env-run")
    assert user_metrics(exp) == {"x": [[7, 1.5]]}
    assert {r["key"] for r in server.requests() if r["path"].startswith("/api/")} == {"key#2"}


# ------------------------------------------------------------------------------------------------
# resume
# ------------------------------------------------------------------------------------------------

RESUME = """
url, key, run_id, resume, first, last = sys.argv[1:7]
swanlab.login(api_key=key, host=url, save=False)
try:
    run = swanlab.init(project="proj-r", workspace="team-r", id=run_id, resume=resume, name="resumable")
except Exception as e:
    out(ok=False, error=type(e).__name__, message=str(e))
    sys.exit(0)
for step in range(int(first), int(last) + 1):
    swanlab.log({"loss": 10.0 - step}, step=step)
swanlab.finish()
out(ok=True, id=run.id)
"""


def test_resume_by_id_continues_the_same_experiment(server, tmp_path):
    assert results(run_client(tmp_path, "r1", RESUME, server.url, KEY, "runfixed01", "allow", "1", "3").stdout) \
        == [{"ok": True, "id": "runfixed01"}]
    assert results(run_client(tmp_path, "r2", RESUME, server.url, KEY, "runfixed01", "must", "4", "5").stdout) \
        == [{"ok": True, "id": "runfixed01"}]
    exp = only_experiment(server.dump())
    assert exp["id"] == "runfixed01"
    assert (exp["created_count"], exp["resumed_count"]) == (1, 1)
    assert user_metrics(exp) == {"loss": [[s, 10.0 - s] for s in range(1, 6)]}
    assert exp["states_received"] == ["FINISHED", "FINISHED"] and exp["state"] == "FINISHED"
    assert exp["duplicates"] == []
    # the client asked for the summary of what the experiment already had, and got the latest step
    summaries = [r for r in server.requests() if r["route"] == "metrics.summary"]
    assert len(summaries) == 1 and summaries[0]["status"] == 200

    # resume="must" with an id the server does not know: the client refuses to start
    missing = results(run_client(tmp_path, "r3", RESUME, server.url, KEY, "nosuchrun9", "must", "1", "1").stdout)
    assert missing[0]["ok"] is False and missing[0]["error"] == "RuntimeError"
    assert "nosuchrun9 does not exist" in missing[0]["message"]
    assert len(server.dump()["experiments"]) == 1
    gets = [r for r in server.requests() if r["route"] == "experiment.get" and "nosuchrun9" in r["path"]]
    assert gets and all(r["status"] == 404 for r in gets)


# ------------------------------------------------------------------------------------------------
# offline, then swanlab sync
# ------------------------------------------------------------------------------------------------

OFFLINE_RUN = """
workspace = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
run = swanlab.init(mode="offline", project="offline-proj", workspace=workspace, name="offline-run", log_dir="offline-logs",
                   description="recorded offline", config={"batch": 8}, tags=["off"])
for step in range(1, 6):
    swanlab.log({"train/loss": round(5.0 - 0.5 * step, 3)}, step=step)
swanlab.log({"note": swanlab.Text("written offline")}, step=4)
with open("offline.txt", "w") as f:
    f.write("offline file\\n")
run.save("offline.txt", policy="now")
swanlab.finish()
out(id=run.id)
"""


def test_offline_then_sync_with_host_and_key_flags(server, tmp_path):
    offline_id = results(run_client(tmp_path, "offline", OFFLINE_RUN, "-").stdout)[0]["id"]
    assert server.requests() == []  # offline really is offline
    proc = swanlab_cli(tmp_path, "sync", str(offline_run_dir(tmp_path)), "--host", server.url, "--api-key", KEY,
                       "--workspace", "team-s", "--project", "synced-proj")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exp = only_experiment(server.dump())
    assert (exp["workspace"], exp["project"], exp["name"]) == ("team-s", "synced-proj", "offline-run")
    # swanlab sync without --id creates a new experiment id, not the offline run's id
    assert exp["id"] != offline_id
    assert user_metrics(exp) == {"train/loss": [[1, 4.5], [2, 4.0], [3, 3.5], [4, 3.0], [5, 2.5]]}
    assert [m["text"] for m in exp["media"]["note"]] == [["written offline"]]
    assert [(f["name"], f["state"], f["size"]) for f in exp["files"]] == [("offline.txt", "UPLOADED", 13)]
    assert exp["config"] == {"batch": 8}
    assert exp["state"] == "FINISHED" and exp["created_count"] == 1 and exp["duplicates"] == []
    assert server.dump()["unimplemented"] == []


def test_offline_then_sync_with_env_settings(server, tmp_path):
    results(run_client(tmp_path, "offline", OFFLINE_RUN, "-").stdout)
    env = client_env(tmp_path, SWANLAB_API_HOST=server.url, SWANLAB_WEB_HOST=server.url, SWANLAB_API_KEY=KEY2)
    proc = swanlab_cli(tmp_path, "sync", str(offline_run_dir(tmp_path)), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exp = only_experiment(server.dump())
    # no workspace anywhere: the key's user; the project is the one the offline run recorded
    assert (exp["workspace"], exp["project"]) == (username_for_key(KEY2), "offline-proj")
    assert [s for s, _ in user_metrics(exp)["train/loss"]] == [1, 2, 3, 4, 5]


def test_cli_login_saves_credentials_that_sync_uses(server, tmp_path):
    proc = swanlab_cli(tmp_path, "login", "--api-key", KEY2, "--host", server.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    netrc = (tmp_path / "home" / ".swanlab" / ".netrc").read_text()
    assert f"machine {server.url}" in netrc  # the API host is the netrc machine
    results(run_client(tmp_path, "offline", OFFLINE_RUN, "team-n").stdout)
    proc = swanlab_cli(tmp_path, "sync", str(offline_run_dir(tmp_path)))  # no --host, no --api-key
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exp = only_experiment(server.dump())
    # the workspace the offline run was given is kept by sync
    assert (exp["workspace"], exp["project"]) == ("team-n", "offline-proj")
    assert [(r["route"], r["key"], r["status"]) for r in server.requests() if r["route"] == "login"] == [
        ("login", "key#2", 200), ("login", "key#2", 200)]


def test_sync_id_backfills_an_existing_experiment(server, tmp_path):
    # the cloud experiment got steps 1-2 (say the training fell back to offline after that) ...
    assert results(run_client(tmp_path, "online_part", RESUME, server.url, KEY, "backfill01", "allow", "1", "2")
                   .stdout)[0]["ok"]
    # ... and a local run holds all of 1-5
    local = """
    run = swanlab.init(mode="offline", project="proj-r", name="local-copy", log_dir="offline-logs")
    for step in range(1, 6):
        swanlab.log({"loss": 10.0 - step}, step=step)
    swanlab.finish()
    """
    run_client(tmp_path, "local_copy", local)
    proc = swanlab_cli(tmp_path, "sync", str(offline_run_dir(tmp_path)), "--id", "backfill01", "--host", server.url,
                       "--api-key", KEY, "--workspace", "team-r", "--project", "proj-r")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exp = only_experiment(server.dump())
    assert exp["id"] == "backfill01" and exp["name"] == "resumable"
    assert (exp["created_count"], exp["resumed_count"]) == (1, 1)
    assert user_metrics(exp) == {"loss": [[s, 10.0 - s] for s in range(1, 6)]}
    # the client skipped the steps the summary said were there: nothing arrived twice
    assert exp["duplicates"] == []
    scalar_uploads = [json.loads(r["body"]) for r in server.requests() if r["route"] == "metrics.upload"]
    sent_by_sync = [m["index"] for b in scalar_uploads if b["type"] == "scalar" for m in b["metrics"]
                    if m["key"] == "loss"]
    assert sent_by_sync == [1, 2, 3, 4, 5]


# ------------------------------------------------------------------------------------------------
# store durability: restart under a live client
# ------------------------------------------------------------------------------------------------

LIVE = """
url, key, go = sys.argv[1], sys.argv[2], sys.argv[3]
swanlab.login(api_key=key, host=url, save=False)
run = swanlab.init(project="proj-live", workspace="team-l", name="live", id="liverun001", resume="allow")
swanlab.log({"loss": 1.0}, step=1)
out(stage="logged-1")
while not os.path.exists(go):
    time.sleep(0.1)
swanlab.log({"loss": 2.0}, step=2)
swanlab.finish()
out(stage="finished")
"""


def test_restart_keeps_store_and_sessions(server, tmp_path):
    go = tmp_path / "go"
    proc = start_client(tmp_path, "live", LIVE, server.url, KEY, str(go))
    try:
        wait_for(lambda: (server.dump()["experiments"] or [{}])[0].get("metrics", {}).get("loss"), 120,
                 "step 1 to arrive")
        before = server.requests()
        server.restart(same_port=True)
        assert load_dump(tmp_path / "store")["experiments"][0]["metrics"]["loss"] == [[1, 1.0]]
        go.touch()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert [r["stage"] for r in results(out)] == ["logged-1", "finished"]
    exp = only_experiment(server.dump())
    assert user_metrics(exp) == {"loss": [[1, 1.0], [2, 2.0]]} and exp["state"] == "FINISHED"
    after = [r for r in server.requests() if r["id"] > before[-1]["id"]]
    # the client did not log in again: its session from before the restart is still valid
    assert after and all(r["route"] != "login" for r in after)
    assert {r["key"] for r in after if r["path"].startswith("/api/")} == {"key#1"}
    assert all(r["status"] < 400 for r in after)


# ------------------------------------------------------------------------------------------------
# faults
# ------------------------------------------------------------------------------------------------

def test_status_faults_401_everywhere_and_503_retried(server, tmp_path):
    server.set_faults(status={"code": 401, "prefix": "/api"})
    bad = results(run_client(tmp_path, "all401", LOGIN, server.url, KEY).stdout)
    assert bad == [{"ok": False, "error": "AuthenticationError", "message": AUTH_ERROR}]
    server.set_faults(status={"code": 503, "prefix": "/api/login", "count": 2})
    started = time.monotonic()
    ok = results(run_client(tmp_path, "retried", LOGIN, server.url, KEY).stdout)
    assert ok == [{"ok": True, "username": username_for_key(KEY)}]
    logins = [r["status"] for r in server.requests() if r["path"] == "/api/login/api_key"]
    # the client retries 5xx with a backoff (0 s, then 1 s): two 503s, then success
    assert logins == [401, 503, 503, 200]
    assert time.monotonic() - started >= 1.0
    assert server.get_faults()["status"] == []  # a counted rule disappears once used up


def test_status_fault_on_experiment_create_fails_init(server, tmp_path):
    server.set_faults(status={"code": 403, "prefix": "/api/project/team-a/proj-a/experiment"})
    body = """
    url, key = sys.argv[1], sys.argv[2]
    swanlab.login(api_key=key, host=url, save=False)
    try:
        swanlab.init(project="proj-a", workspace="team-a")
    except Exception as e:
        out(ok=False, error=type(e).__name__)
    else:
        out(ok=True)
    """
    assert results(run_client(tmp_path, "forbidden", body, server.url, KEY).stdout) == [
        {"ok": False, "error": "RuntimeError"}]
    assert server.dump()["experiments"] == []
    creates = [r for r in server.requests() if r["route"] == "experiment.create"]
    assert [(r["status"], r["outcome"]) for r in creates] == [(403, "fault status")]


METRICS_RUN = """
url, key = sys.argv[1], sys.argv[2]
swanlab.login(api_key=key, host=url, save=False)
run = swanlab.init(project="proj-f", workspace="team-f", name="faulty")
for step in range(1, 4):
    swanlab.log({"m": float(step)}, step=step)
swanlab.finish()
out(id=run.id)
"""


def test_metric_upload_500_is_retried_without_loss(server, tmp_path):
    server.set_faults(status={"code": 500, "prefix": "/api/house/metrics", "count": 2})
    run_client(tmp_path, "m500", METRICS_RUN, server.url, KEY)
    exp = only_experiment(server.dump())
    assert user_metrics(exp) == {"m": [[1, 1.0], [2, 2.0], [3, 3.0]]} and exp["duplicates"] == []
    uploads = [r["status"] for r in server.requests() if r["route"] == "metrics.upload"]
    assert uploads[:2] == [500, 500] and set(uploads[2:]) == {201}
    assert exp["state"] == "FINISHED"


def test_delay_slows_every_answer(server, tmp_path):
    server.set_faults(delay=0.4)
    body = """
    url, key = sys.argv[1], sys.argv[2]
    t0 = time.monotonic()
    swanlab.login(api_key=key, host=url, save=False)
    run = swanlab.init(project="proj-d", workspace="team-d")
    started = time.monotonic() - t0
    swanlab.log({"v": 3.0}, step=1)
    swanlab.finish()
    out(started=started)
    """
    started = results(run_client(tmp_path, "delayed", body, server.url, KEY).stdout)[0]["started"]
    # login, project get (404), project create, project get, experiment create: 5 answers >= 0.4 s each
    assert started >= 5 * 0.4
    assert user_metrics(only_experiment(server.dump())) == {"v": [[1, 3.0]]}
    durations = [r["duration"] for r in server.requests()]
    assert durations and min(durations) >= 0.4


def test_stop_answering_after_metric_uploads_holds_finish_until_cleared(server, tmp_path):
    go = tmp_path / "go"
    body = """
    url, key, go = sys.argv[1], sys.argv[2], sys.argv[3]
    swanlab.login(api_key=key, host=url, save=False)
    run = swanlab.init(project="proj-h", workspace="team-h", name="held")
    swanlab.log({"h": 1.0}, step=1)
    out(stage="logged-1")
    while not os.path.exists(go):
        time.sleep(0.1)
    swanlab.log({"h": 2.0}, step=2)
    swanlab.log({"h": 3.0}, step=3)
    out(stage="finishing")
    open(go + ".finishing", "w").close()
    swanlab.finish()
    out(stage="finished")
    """
    proc = start_client(tmp_path, "held", body, server.url, KEY, str(go))
    try:
        wait_for(lambda: (server.dump()["experiments"] or [{}])[0].get("metrics", {}).get("h"), 120, "step 1")
        server.set_faults(hang_after_metrics=0, hang_prefix="/api/house/metrics")
        go.touch()
        wait_for(lambda: server.get_faults()["counters"]["requests_held_now"] >= 1, 120, "a held upload")
        wait_for(lambda: Path(f"{go}.finishing").exists(), 120, "the client to call finish()")
        time.sleep(2.0)  # finish() has been waiting this long (a correct client never returns here)
        assert proc.poll() is None, "finish returned although uploads were never answered"
        assert user_metrics(only_experiment(server.dump()))["h"] == [[1, 1.0]]
        server.clear_faults()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert [r["stage"] for r in results(out)] == ["logged-1", "finishing", "finished"]
    exp = only_experiment(server.dump())
    assert user_metrics(exp) == {"h": [[1, 1.0], [2, 2.0], [3, 3.0]]} and exp["state"] == "FINISHED"


def test_hang_switch_from_command_line_counts_metric_uploads(tmp_path, swanlab_version):
    # every route stops answering after the first metric upload; the client's finish then waits
    with StandIn(tmp_path / "store", api_keys=[KEY],
                 extra_args=["--hang-after-metrics", "1", "--hang-prefix", "/api/house"]) as s:
        proc = start_client(tmp_path, "cli_hang", METRICS_RUN, s.url, KEY)
        try:
            wait_for(lambda: s.get_faults()["counters"]["requests_held_now"] >= 1, 120, "a held request")
            assert s.get_faults()["counters"]["metric_uploads"] == 1
            time.sleep(1.0)
            assert proc.poll() is None
            s.set_faults(hang_after_metrics=None)
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        assert user_metrics(only_experiment(s.dump())) == {"m": [[1, 1.0], [2, 2.0], [3, 3.0]]}


POINT_RUN = """
url, key, gates = sys.argv[1], sys.argv[2], sys.argv[3]
swanlab.login(api_key=key, host=url, save=False)
run = swanlab.init(project="proj-p", workspace="team-p", name="point")


def wait_for_gate(name):
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(gates, name)):
        if time.monotonic() > deadline:
            out(stage=f"the test never opened gate {name}")
            sys.exit(3)
        time.sleep(0.1)


swanlab.log({"loss": 1.0, "other": 1.0}, step=1)
wait_for_gate("step2")
swanlab.log({"loss": 2.0, "other": 2.0}, step=2)
wait_for_gate("step3")
swanlab.log({"loss": 3.0}, step=3)
swanlab.finish()
out(stage="finished")
"""


def loss_steps(server) -> list:
    experiments = server.dump()["experiments"]
    return [s for s, _ in user_metrics(experiments[0]).get("loss", [])] if experiments else []


def test_stop_answering_once_a_given_point_arrived(server, tmp_path):
    """hang_after_point: the hold starts once the server has the named point (loss at step >= 2),
    not after some number of uploads; `holding` says when it has started."""
    server.set_faults(hang_after_point={"key": "loss", "step": 2}, hang_prefix="/api/house/metrics")
    gates = tmp_path / "gates"
    gates.mkdir()
    proc = start_client(tmp_path, "point", POINT_RUN, server.url, KEY, str(gates))
    try:
        wait_for(lambda: loss_steps(server) == [1], 120, "loss step 1 on the server")
        assert server.get_faults()["counters"]["holding"] is False  # step 1 < 2: still answering
        (gates / "step2").touch()
        wait_for(lambda: server.get_faults()["counters"]["holding"], 120,
                 "the hold to start once loss step 2 arrived")
        assert loss_steps(server) == [1, 2]
        (gates / "step3").touch()
        wait_for(lambda: server.get_faults()["counters"]["requests_held_now"] >= 1, 120,
                 "the upload of step 3 to be held")
        assert loss_steps(server) == [1, 2] and proc.poll() is None
        assert server.get_faults()["hang_after_point"] == {"key": "loss", "step": 2}
        server.set_faults(hang_after_point=None)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    exp = only_experiment(server.dump())
    assert user_metrics(exp) == {"loss": [[1, 1.0], [2, 2.0], [3, 3.0]],
                                 "other": [[1, 1.0], [2, 2.0]]} and exp["state"] == "FINISHED"
    assert server.get_faults()["counters"]["holding"] is False


def test_hang_after_point_from_command_line_and_bad_values(tmp_path):
    with StandIn(tmp_path / "store", api_keys=[KEY],
                 extra_args=["--hang-after-point", "train/loss:3", "--hang-prefix", "/api"]) as s:
        faults = s.get_faults()
        assert (faults["hang_after_point"], faults["hang_prefix"]) == ({"key": "train/loss", "step": 3}, "/api")
        assert faults["counters"]["holding"] is False
        for bad in ({"step": 2}, {"key": "loss", "step": -1}, {"key": "loss", "step": "2"}, "loss"):
            with pytest.raises(urllib.error.HTTPError) as err:
                s.set_faults(hang_after_point=bad)
            assert err.value.code == 400, bad
        assert s.get_faults()["hang_after_point"] == {"key": "train/loss", "step": 3}  # unchanged
    with StandIn(tmp_path / "store2", api_keys=[KEY], extra_args=["--hang-after-point", "loss"]) as s:
        assert s.get_faults()["hang_after_point"] == {"key": "loss", "step": 1}


def test_dropped_connections(server, tmp_path):
    # before: nothing stored, the client sees a connection error and sends the batch again
    server.set_faults(drop={"prefix": "/api/house/metrics", "count": 1, "when": "before"})
    run_client(tmp_path, "drop_before", METRICS_RUN, server.url, KEY)
    exp = only_experiment(server.dump())
    assert user_metrics(exp) == {"m": [[1, 1.0], [2, 2.0], [3, 3.0]]} and exp["duplicates"] == []
    dropped = [r for r in server.requests() if r["outcome"] == "dropped before handling"]
    assert len(dropped) == 1 and dropped[0]["status"] is None

    # after: the batch was stored but the answer lost; the client resends it, and the dump shows
    # the points that arrived twice instead of merging them silently
    server.set_faults(drop={"prefix": "/api/house/metrics", "count": 1, "when": "after",
                            "methods": ["POST"]})
    first_id = server.requests()[-1]["id"]
    body = METRICS_RUN.replace('name="faulty"', 'name="dropped-after"').replace("proj-f", "proj-g")
    run_client(tmp_path, "drop_after", body, server.url, KEY)
    exp2 = [e for e in server.dump()["experiments"] if e["project"] == "proj-g"][0]
    later = [r for r in server.requests() if r["id"] > first_id]
    dropped_after = [r for r in later if r["outcome"] == "handled, then dropped"]
    assert len(dropped_after) == 1
    again = json.loads(dropped_after[0]["body"])
    resent = [r for r in later if r["route"] == "metrics.upload" and r["status"] == 201
              and json.loads(r["body"])["type"] == again["type"]
              and json.loads(r["body"])["metrics"] == again["metrics"]]
    assert resent, "the client did not send the dropped batch again"
    assert exp2["duplicates"] and all(d["first"] == d["again"] for d in exp2["duplicates"])
    assert user_metrics(exp2) == {"m": [[1, 1.0], [2, 2.0], [3, 3.0]]}


# ------------------------------------------------------------------------------------------------
# the rest of the protocol
# ------------------------------------------------------------------------------------------------

def test_multipart_save_and_legacy_projects(tmp_path, swanlab_version):
    body = """
    url, key = sys.argv[1], sys.argv[2]
    swanlab.login(api_key=key, host=url, save=False)
    run = swanlab.init(project="old-proj", workspace="old-team", name="legacy")
    swanlab.log({"a/b": 0.5}, step=1)
    with open("big.bin", "wb") as f:
        f.write(bytes(range(256)) * 10)
    run.save("big.bin", policy="end")
    swanlab.finish()
    """
    env = client_env(tmp_path, SWANLAB_CORE_SAVE_SPLIT="1000", SWANLAB_CORE_SAVE_PART="1000")
    with StandIn(tmp_path / "store", api_keys=[KEY], legacy_projects=True) as s:
        run_client(tmp_path, "legacy", body, s.url, KEY, env=env)
        dump = s.dump()
        routes = [r["route"] for r in s.requests()]
    exp = only_experiment(dump)
    assert user_metrics(exp) == {"a/b": [[1, 0.5]]}
    # an older server: the client falls back to POST /api/project and the per-experiment column route
    assert dump["projects"][0]["created_via"] == "project" and "project.create_legacy" in routes
    assert "columns.legacy" in routes and "columns.series" not in routes
    assert any(c["key"] == "a/b" for c in exp["legacy_columns"])
    big = [f for f in exp["files"] if f["name"] == "big.bin"][0]
    assert big["multipart"] and big["state"] == "UPLOADED" and big["size"] == 2560 and big["content_matches_md5"]
    assert routes.count("storage.put") >= 3  # three 1000-byte parts
    assert dump["unimplemented"] == []


SAVE_AND_ASK = """
url, key = sys.argv[1], sys.argv[2]
swanlab.login(api_key=key, host=url, save=False)
run = swanlab.init(project="files", name="save")
with open("small.txt", "w") as f:
    f.write("kept or not\\n")
with open("big.bin", "wb") as f:
    f.write(bytes(range(256)) * 10)
run.save("small.txt", policy="now")
run.save("big.bin", policy="now")
from swanlab.sdk.internal.core_python import client
try:
    answer = client.get("/self_hosted/info", retries=0)
    info, status = answer.data, answer.raw.status_code
except swanlab.exceptions.ApiError as error:  # any non-2xx
    info, status = None, error.response.status_code
swanlab.finish()
out(info=info, status=status)
"""


@pytest.mark.parametrize("public_cloud", [False, True])
def test_private_deployment_stores_files_public_cloud_refuses_them(tmp_path, swanlab_version,
                                                                  public_cloud):
    env = client_env(tmp_path, SWANLAB_CORE_SAVE_SPLIT="1000", SWANLAB_CORE_SAVE_PART="1000")
    with StandIn(tmp_path / "store", api_keys=[KEY], public_cloud=public_cloud) as s:
        proc = run_client(tmp_path, "save", SAVE_AND_ASK, s.url, KEY, env=env)
        dump = s.dump()
    answer = results(proc.stdout)[0]
    files = {f["name"]: f for f in only_experiment(dump)["files"]}
    if public_cloud:  # (0.8 gives up after the first refusal, 0.10 tries both)
        assert answer == {"info": None, "status": 404}
        assert "small.txt" in files and set(files) <= {"small.txt", "big.bin"}, files
        assert {f["state"] for f in files.values()} == {"REFUSED"}
        assert all(f.get("size") is None for f in files.values())  # nothing stored
    else:
        assert answer["status"] == 200 and answer["info"]["enabled"] is True
        assert set(files) == {"small.txt", "big.bin"}, files
        assert {f["state"] for f in files.values()} == {"UPLOADED"}
        assert files["big.bin"]["multipart"] and files["big.bin"]["content_matches_md5"]
    assert dump["unimplemented"] == []


def test_unknown_routes_and_bad_signatures(server, tmp_path):
    def call(method, path, body=None):
        req = urllib.request.Request(server.url + path, method=method, data=body)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    status, body = call("GET", "/api/v2/something/new")
    assert status == 404 and body["code"] == "NOT_FOUND"
    status, _ = call("DELETE", "/api/project/a/b")
    assert status == 404
    status, _ = call("PUT", "/__storage__/files/x/y.txt?sig=wrong", b"data")
    assert status == 403
    status, body = call("GET", "/api/project/a/b")  # a known route without a session
    assert status == 401
    dump = server.dump()
    assert dump["unimplemented"] == [{"method": "GET", "path": "/api/v2/something/new", "count": 1},
                                     {"method": "DELETE", "path": "/api/project/a/b", "count": 1}]
    # the dump command prints the same JSON
    server.stop()
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "swanlab_server.py"), "dump", "--store",
                           str(tmp_path / "store")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["unimplemented"] == dump["unimplemented"]


def test_serve_prints_one_url_line_and_rejects_unknown_fault_switches(tmp_path):
    proc = subprocess.Popen([sys.executable, str(REPO / "tools" / "swanlab_server.py"), "serve", "--port", "0",
                             "--store", str(tmp_path / "s"), "--api-key", KEY], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:") and int(line.rsplit(":", 1)[1]) > 0
        req = urllib.request.Request(line + "/__standin__/faults", method="POST", data=b'{"explode": true}')
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 400
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
