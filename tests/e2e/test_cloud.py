"""Cloud mode end to end: real `axolotl train` (Axolotl 0.19.0, the real swanlab client in the
sidecar) against the SwanLab API stand-in (tools/swanlab_server.py) on 127.0.0.1.

Every training is read back twice: from the stand-in's dump (what the client really sent) and
from disk (the local copy every cloud run keeps), and both are compared with the Trainer's own
record (the last checkpoint's trainer_state.json). Every recovery command is the one the
warning printed, run exactly as printed, with the key only in the environment, as a job has it.
"""
from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from e2e_support import AT_ONCE, harness, messages, only_run, settled_run
from swanlab_autopatch.runs.reader import find_runs
from swanlab_server import StandIn, username_for_key  # tools/ is on sys.path (e2e_support)

KEY = "canary-cloud-key-7c41e09b5a"         # accepted by the stand-in (key#1)
KEY2 = "canary-cloud-key2-3f9d26ae18"       # accepted too (key#2)
WRONG = "canary-cloud-wrong-b80c5d14e7"     # refused (401)
CANARIES = (KEY, KEY2, WRONG)
# What the Trainer logs and the Trainer's own record keeps (trainer_state.json log_history).
TRAINER_KEYS = {"train/loss": "loss", "train/learning_rate": "learning_rate",
                "train/grad_norm": "grad_norm"}
# The spec's examples 3, 4 and 5 (as SPEC_EXAMPLES in test_modes_and_runs.py), without the
# plugins: line (this package makes it unnecessary on 0.19.0).
EXAMPLE_3 = dict(use_swanlab=True, swanlab_project="research-project",
                 swanlab_experiment_name="experiment-42", swanlab_workspace="my-research-team",
                 swanlab_mode="cloud")
EXAMPLE_4 = dict(use_swanlab=True, swanlab_project="internal-project",
                 swanlab_experiment_name="secure-training", swanlab_mode="cloud")
EXAMPLE_5 = dict(use_swanlab=True, swanlab_project="RVQ-Alpha-Training",
                 swanlab_experiment_name="Qwen2.5-7B-MetaQA-Perturb-P020",
                 swanlab_description="Training on MetaQA and Perturbation datasets with "
                                     "NEW-RVQ encoding",
                 swanlab_mode="cloud", swanlab_workspace="single-cell-genomics",
                 num_epochs=2, learning_rate=2e-5, optimizer="adamw_torch")

# What a training does after its last step besides our finish bound (saving the model, Axolotl's
# and the interpreter's exit): seconds on a quiet machine, generous for a loaded one.
AFTER_TRAINING_SLACK = 60

# Holds the training at the start of its second step until the stand-in has stopped answering
# (sitecustomize.py on PYTHONPATH; the stand-in holds every request once it has received
# train/loss step 1). So the server has step 1 and nothing after it, whatever order and batches
# SwanLab's client uploads in on a quiet or a busy machine, and steps 2..20 are trained against
# a server that holds every request. Bounded: past CLOUD_TEST_GATE_SECONDS the training fails
# with a line saying what was never reached. Also writes when the last step ended (wall clock).
GATE = '''
import json, os, time, urllib.request
import wrapt

_FAULTS = os.environ["CLOUD_TEST_STANDIN"] + "/__standin__/faults"
_BOUND = float(os.environ.get("CLOUD_TEST_GATE_SECONDS", "300"))
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _server_holds():
    with _OPENER.open(_FAULTS, timeout=30) as answer:
        return json.load(answer)["counters"]["holding"]


def _wait_until_the_server_holds():
    deadline = time.monotonic() + _BOUND
    while not _server_holds():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gate: the stand-in did not stop answering within {_BOUND:.0f} s "
                               "(it never received train/loss step 1)")
        time.sleep(0.2)


@wrapt.when_imported("transformers.trainer")
def _gate(module):
    def training_step(wrapped, instance, args, kwargs):
        if instance.state.global_step == 1 and not os.environ.get("CLOUD_TEST_GATE_PASSED"):
            _wait_until_the_server_holds()
            os.environ["CLOUD_TEST_GATE_PASSED"] = "1"
        result = wrapped(*args, **kwargs)
        with open(os.environ["CLOUD_TEST_LAST_STEP"], "w") as fh:
            fh.write(repr(time.time()))
        return result

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
'''


# -- helpers ----------------------------------------------------------------------------------


def standin(tmp_path: Path, name: str = "store", keys=(KEY,)) -> StandIn:
    return StandIn(tmp_path / name, api_keys=list(keys))


def hosts(server: StandIn) -> dict:
    """The private deployment's two addresses, both the stand-in (it serves API and links)."""
    return {"swanlab_api_host": server.url, "swanlab_web_host": server.url}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def trainer_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every point the Trainer logged for the TRAINER_KEYS, from its own record."""
    states = sorted((run_dir / "out").glob("checkpoint-*/trainer_state.json"),
                    key=lambda p: int(p.parent.name.split("-")[-1]))
    history = json.loads(states[-1].read_text())["log_history"]
    out = {key: [(int(e["step"]), float(e[name])) for e in history if name in e]
           for key, name in TRAINER_KEYS.items()}
    assert out["train/loss"] == harness.trainer_losses(run_dir)
    return out


def user_metrics(experiment: dict) -> dict[str, list[tuple[int, float]]]:
    """The server's scalar series, without SwanLab's own system monitor keys."""
    return {key: [(int(s), float(v)) for s, v in points]
            for key, points in experiment["metrics"].items() if not key.startswith("__swanlab__.")}


def local_metrics(runs) -> dict[str, list[tuple[int, float]]]:
    """The local copy's scalar series (one or more folders of one run, oldest first)."""
    merged: dict[str, list[tuple[int, float]]] = {}
    for run in sorted(runs, key=lambda r: r.path.name):  # run-<date>_<time>-<id>
        for key, points in run.scalars.items():
            merged.setdefault(key, []).extend(points)
    return merged


def only_experiment(dump: dict) -> dict:
    found = [(e["workspace"], e["project"], e["id"]) for e in dump["experiments"]]
    assert len(found) == 1, f"expected one experiment on the server, found {found}"
    return dump["experiments"][0]


def experiment_in(dump: dict, workspace: str, project: str) -> dict:
    found = [e for e in dump["experiments"]
             if (e["workspace"], e["project"]) == (workspace, project)]
    assert len(found) == 1, [(e["workspace"], e["project"], e["id"]) for e in dump["experiments"]]
    return found[0]


def assert_complete(experiment: dict, result, runs=None, steps: int = 10) -> None:
    """The server holds every point the Trainer logged, once, finished; the local copy holds
    the same series."""
    assert experiment["state"] == "FINISHED", (experiment["state"], experiment["states_received"])
    assert experiment["duplicates"] == [], experiment["duplicates"][:5]
    served = user_metrics(experiment)
    for key, points in trainer_series(result.run_dir).items():
        assert [s for s, _ in points] == list(range(1, steps + 1)), (key, points)
        assert served.get(key) == points, (key, served.get(key), points)
    runs = runs if runs is not None else [only_run(result.log_dir)]
    assert local_metrics(runs) == served, sorted(set(local_metrics(runs)) ^ set(served))


def assert_same_config(experiment: dict, run) -> None:
    """The config on the server is the local copy's, with this training's values in it."""
    assert experiment["config"] == run.config
    assert experiment["config"]["framework"] == "axolotl"
    assert experiment["config"]["versions"]["swanlab"] == "0.10.3"


def yaml_text(experiment: dict, run) -> str:
    """The YAML as text (media/text), the same on the server and in the local copy."""
    served = experiment["media"]["axolotl_config"]
    assert len(served) == 1 and served[0]["type"] == "text", served
    assert all(f["stored"] for f in served[0]["files"]), served
    local = [m for m in run.media if m["key"] == "axolotl_config"]
    assert len(local) == 1
    assert served[0]["text"] == [local[0]["text"]]
    return served[0]["text"][0]


def unexpected_routes(server: StandIn) -> list:
    """Calls the stand-in does not implement, other than this package's reachability probe."""
    return [u for u in server.dump()["unimplemented"]
            if (u["method"], u["path"]) != ("GET", "/api")]


def logins(server: StandIn) -> list[tuple[str, int]]:
    return [(r["key"], r["status"]) for r in server.requests() if r["route"] == "login"]


def secret_places(result, server: StandIn, allowed=()) -> list[str]:
    """Where any canary key appears: stdout, stderr, every file of the training folder (the
    SwanLab run folder, output_dir with Axolotl's debug.log, SwanLab's global folder) except
    the user's own YAML and saved login, every file of the stand-in's store, its dump with the
    raw request log."""
    allowed = {Path(p).resolve() for p in allowed} | {(result.run_dir / "cfg.yaml").resolve()}
    found = []
    dump = json.dumps(server.dump(requests=True))
    for canary in CANARIES:
        data = canary.encode()
        for where, text in (("stdout", result.stdout), ("stderr", result.stderr), ("dump", dump)):
            if canary in text:
                found.append(f"{canary} in {where}")
        for folder in (result.run_dir, server.store_dir):
            for path in Path(folder).rglob("*"):
                if path.is_file() and path.resolve() not in allowed and data in path.read_bytes():
                    found.append(f"{canary} in {path}")
    return found


def fallback(result) -> tuple[str, float, str]:
    """The one warning of a cloud run that was recorded offline: (line, seconds waited,
    the recovery command as printed once, at the end)."""
    lines = [l for l in messages(result) if "cloud mode could not start" in l]
    assert len(lines) == 1, messages(result)
    waited = float(re.search(r"gave up after ([0-9.]+) s", lines[0]).group(1))
    ends = [l for l in messages(result) if "upload it with:" in l]
    assert len(ends) == 1 and result.output.count("swanlab sync") == 1, messages(result)
    return lines[0], waited, printed_command(ends[0])


def printed_command(line: str) -> str:
    command = re.split(r" with: ", line, maxsplit=1)[1].strip()
    assert command.startswith(("swanlab sync ", "SWANLAB_API_HOST=")), command
    return command


def run_printed(trainer, result, command: str, key: str = KEY) -> subprocess.CompletedProcess:
    """The command exactly as printed, as a shell runs it (leading NAME=value words go to the
    environment): the venv's PATH, the key only in SWANLAB_API_KEY, in the training's folder."""
    words = shlex.split(command)
    env = harness.training_env(trainer.venv, {"SWANLAB_API_KEY": key},
                               swanlab_root=result.run_dir / ".swanlab-root")
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    proc = subprocess.run(words, cwd=result.run_dir, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"$ {command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert key not in proc.stdout + proc.stderr
    return proc


def assert_synced(trainer, result, server: StandIn, command: str, workspace: str,
                  project: str, steps: int = 10) -> dict:
    """Run the printed command (twice: a second upload must change nothing) and check that the
    server now has the whole run, once, where the training was meant to go."""
    run = only_run(result.log_dir)
    assert f"--host {server.url} " in command and f"--project {project} " in command, command
    assert f"--id {run.run_id} " in command, command
    run_printed(trainer, result, command)
    exp = only_experiment(server.dump())
    assert (exp["workspace"], exp["project"], exp["id"]) == (workspace, project, run.run_id)
    assert_complete(exp, result, steps=steps)
    assert exp["created_count"] == 1
    assert_same_config(exp, run)
    run_printed(trainer, result, command)  # the same command again: no second experiment
    again = only_experiment(server.dump())
    assert again["duplicates"] == [] and user_metrics(again) == user_metrics(exp)
    assert unexpected_routes(server) == []
    return exp


# -- 1. the spec's examples against a private deployment ---------------------------------------


def test_private_deployment_with_the_key_in_the_yaml(trainer, tmp_path):
    """Example 4, the key in the YAML (which wins over a different SWANLAB_API_KEY): one
    finished experiment in the key's own workspace with every point, config and YAML text,
    and the key nowhere but in the user's own YAML."""
    with standin(tmp_path) as server:
        result = trainer.run(env={"SWANLAB_API_KEY": WRONG}, swanlab_api_key=KEY,
                             swanlab_log_model="end", swanlab_tags=["private", "example-4"],
                             swanlab_group="deploy", **EXAMPLE_4, **hosts(server))
        assert result.returncode == 0, result.describe()
        assert not [l for l in messages(result) if "WARNING" in l], messages(result)
        dump = server.dump()
        exp = only_experiment(dump)
        run = only_run(result.log_dir)
        assert (exp["workspace"], exp["project"]) == (username_for_key(KEY), "internal-project")
        assert (exp["id"], exp["name"]) == (run.run_id, "secure-training") == \
            (run.run_id, run.name)
        assert exp["description"] is None and exp["states_received"] == ["FINISHED"]
        assert run.state == "finished" and run.project == "internal-project"
        assert (exp["created_count"], exp["resumed_count"]) == (1, 0)
        assert_complete(exp, result, [run])
        assert_same_config(exp, run)
        assert exp["config"]["axolotl"]["swanlab_api_host"] == server.url
        assert "swanlab_api_key" not in exp["config"]["axolotl"]
        text = yaml_text(exp, run)
        assert '"swanlab_project": "internal-project"' in text
        assert '"swanlab_api_key": ***' in text  # masked, the line kept
        # Tags and group, and the final model files stored with the run (uploaded).
        assert exp["tags"] == ["private", "example-4"] and exp["group"] == "deploy", exp
        uploaded = {f["name"]: f for f in exp["files"]}
        assert {"model.safetensors", "config.json"} <= set(uploaded), sorted(uploaded)
        model = result.run_dir / "out" / "model.safetensors"
        assert uploaded["model.safetensors"]["state"] == "UPLOADED"
        assert uploaded["model.safetensors"]["size"] == model.stat().st_size
        assert logins(server) == [("key#1", 200)]  # the YAML's key, once; never the other one
        assert unexpected_routes(server) == []
        assert secret_places(result, server) == []


def test_key_from_the_environment_and_from_swanlab_login_two_trainings_at_once(trainer, tmp_path):
    """Example 3 (team workspace; key in SWANLAB_API_KEY, the deployment's addresses in
    SWANLAB_API_HOST / SWANLAB_WEB_HOST) and example 5 (the complete one, with description;
    key from `swanlab login` saved for that host, addresses in the YAML), trained at the same
    time against one stand-in: each lands once in its own workspace and project, with its own
    points, and each used its own key."""
    with standin(tmp_path, keys=(KEY, KEY2)) as server:
        root = trainer.root / "complete" / ".swanlab-root"  # SwanLab's folder for that training
        home = tmp_path / "home"
        home.mkdir()
        login = subprocess.run(
            ["swanlab", "login", "--host", server.url, "--api-key", KEY2],
            env={**harness.training_env(trainer.venv, swanlab_root=root), "HOME": str(home)},
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert login.returncode == 0, login.stdout + login.stderr
        saved = root / ".netrc"
        assert f"machine {server.url}" in saved.read_text()
        done = {}
        jobs = {
            "team": dict(env={"SWANLAB_API_KEY": KEY, "SWANLAB_API_HOST": server.url,
                              "SWANLAB_WEB_HOST": server.url}, **EXAMPLE_3),
            "complete": dict(**EXAMPLE_5, **hosts(server)),
        }
        threads = [threading.Thread(target=lambda n=n, kw=kw: done.__setitem__(
            n, trainer.run(name=n, **kw))) for n, kw in jobs.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        team, complete = done["team"], done["complete"]
        for result in (team, complete):
            assert result.returncode == 0, result.describe()
            assert not [l for l in messages(result) if "WARNING" in l], messages(result)
        dump = server.dump()
        assert len(dump["experiments"]) == 2, [(e["workspace"], e["project"]) for e in
                                               dump["experiments"]]
        for result, example in ((team, EXAMPLE_3), (complete, EXAMPLE_5)):
            exp = experiment_in(dump, example["swanlab_workspace"], example["swanlab_project"])
            run = only_run(result.log_dir)
            assert (exp["id"], exp["name"]) == (run.run_id, example["swanlab_experiment_name"])
            assert exp["description"] == example.get("swanlab_description") == run.description
            assert_complete(exp, result, [run])
            assert_same_config(exp, run)
            assert exp["config"]["training"]["learning_rate"] == \
                example.get("learning_rate", 0.001)
            assert example["swanlab_project"] in yaml_text(exp, run)
        # Different learning rates: the two servers' series are not one training's twice.
        a = experiment_in(dump, "my-research-team", "research-project")
        b = experiment_in(dump, "single-cell-genomics", "RVQ-Alpha-Training")
        assert user_metrics(a)["train/learning_rate"] != user_metrics(b)["train/learning_rate"]
        # key#2: `swanlab login` checks it, then the training logs in with it
        assert sorted(logins(server)) == [("key#1", 200), ("key#2", 200), ("key#2", 200)]
        assert {u["key"] for u in dump["users"]} == {"key#1", "key#2"}
        assert unexpected_routes(server) == []
        assert secret_places(team, server) == []
        assert secret_places(complete, server, allowed=[saved]) == []


# -- 2. cloud mode cannot start: offline within the bound, then the printed command ------------


def test_wrong_key_falls_back_at_once_and_the_printed_command_uploads_it(trainer, tmp_path):
    with standin(tmp_path) as server:
        result = trainer.run(env={"SWANLAB_API_KEY": WRONG}, **EXAMPLE_4, **hosts(server))
        assert result.returncode == 0, result.describe()
        line, waited, command = fallback(result)
        assert "login failed" in line and "wrong API key" in line, line
        assert waited < AT_ONCE, line
        assert server.dump()["experiments"] == []
        assert logins(server) == [("key:unknown", 401)]  # one attempt, no retries
        run = only_run(result.log_dir)
        assert run.state == "finished"
        assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
        assert str(run.path) in line
        assert_synced(trainer, result, server, command, username_for_key(KEY), "internal-project")
        assert secret_places(result, server) == []


def test_server_down_falls_back_at_once_and_the_printed_command_uploads_it(trainer, tmp_path):
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}"
    result = trainer.run(env={"SWANLAB_API_KEY": KEY}, **EXAMPLE_3,
                         swanlab_api_host=url, swanlab_web_host=url)
    assert result.returncode == 0, result.describe()
    line, waited, command = fallback(result)
    assert f"cannot reach {url}" in line, line
    assert waited < AT_ONCE, line
    server = standin(tmp_path).start(port=port)  # the deployment is back, at its address
    try:
        assert server.url == url
        assert_synced(trainer, result, server, command, "my-research-team", "research-project")
        assert secret_places(result, server) == []
    finally:
        server.stop()


@pytest.mark.parametrize("hang", ["/", "/api/login", "/api/project"])
def test_hanging_server_falls_back_within_the_connect_timeout(trainer, tmp_path, hang):
    """A server that accepts connections and stops answering, at each step of the start: the
    reachability probe (every route), the login, the project and experiment calls of
    swanlab.init. Each costs at most SWANLAB_AUTOPATCH_CONNECT_TIMEOUT (4 s here), not
    SwanLab's own ~35 s (login) or minutes (init: 60 s per call, 5 retries), and the printed
    command uploads the run once the server answers again."""
    budget = 4
    with standin(tmp_path) as server:
        server.set_faults(delay=60, delay_prefix=hang)
        result = trainer.run(env={"SWANLAB_API_KEY": KEY,
                                  "SWANLAB_AUTOPATCH_CONNECT_TIMEOUT": str(budget)},
                             **EXAMPLE_4, **hosts(server))
        assert result.returncode == 0, result.describe()
        line, waited, command = fallback(result)
        print(f"\n{hang}: {line}")
        assert waited <= budget + 3, line
        expected = {"/": f"did not answer within {budget} s", "/api/login": "login failed",
                    "/api/project": "swanlab.init failed"}[hang]
        assert expected in line, line
        assert len(find_runs(result.log_dir)) == 1  # no empty folder left by the failed start
        run = only_run(result.log_dir)
        assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
        server.clear_faults()
        assert_synced(trainer, result, server, command, username_for_key(KEY), "internal-project")


# -- 3. the server stops answering in the middle of the run -------------------------------------


def test_server_stops_answering_mid_run(trainer, tmp_path):
    """Once the stand-in has received train/loss step 1 it holds every request, and the
    training (held at step 2 until then, see GATE) trains steps 2..20 against it. Training
    still exits 0, the finish waits SWANLAB_AUTOPATCH_FINISH_TIMEOUT (5 s) and no longer, the
    local copy is complete, and once the server answers again the printed command completes
    the server's copy: every step, none twice."""
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "sitecustomize.py").write_text(GATE)
    last_step = tmp_path / "last-step-ended"
    with standin(tmp_path) as server:
        server.set_faults(hang_after_point={"key": "train/loss", "step": 1})
        result = trainer.run(env={"SWANLAB_API_KEY": KEY, "SWANLAB_AUTOPATCH_FINISH_TIMEOUT": "5",
                                  "SWANLAB_AUTOPATCH_UPLOAD_TIMEOUT": "10",
                                  "PYTHONPATH": str(gate), "CLOUD_TEST_STANDIN": server.url,
                                  "CLOUD_TEST_LAST_STEP": str(last_step)},
                             **EXAMPLE_4, **hosts(server), max_steps=20, save_steps=20)
        exited = time.time()
        assert result.returncode == 0, result.describe()
        # The training waited its bound for the helper and went on, naming the file where the
        # helper says how it ended; the helper, after its own bound (it blocks nobody), wrote
        # the recovery command there.
        still = [l for l in messages(result) if "still finishing the run after 5 s" in l]
        assert len(still) == 1, messages(result)
        # From the last step to the exit: saving, the 5 s bound, the interpreter's exit. A wait
        # for the held uploads (SwanLab's own finish has no bound) would never end.
        after_training = exited - float(last_step.read_text())
        assert after_training < 5 + AFTER_TRAINING_SLACK, (after_training, result.describe())
        helper_log = Path(still[0].rsplit(" to ", 1)[1].rstrip("."))
        deadline = time.monotonic() + 180
        while True:
            text = helper_log.read_text(errors="replace") if helper_log.exists() else ""
            ends = [l for l in text.splitlines() if "did not finish uploading within" in l]
            if ends:
                break
            assert time.monotonic() < deadline, f"no recovery command in {helper_log}:\n{text}"
            time.sleep(0.5)
        print(f"\nprocess time {result.seconds:.1f} s, {after_training:.1f} s after the last "
              f"step\n{still[0]}\n{ends[0]}")
        held = only_experiment(server.dump())
        assert held["state"] == "RUNNING"
        assert [s for s, _ in user_metrics(held).get("train/loss", [])] == [1], held["metrics"]
        assert server.get_faults()["counters"]["requests_held_now"] >= 1
        run = settled_run(result.log_dir)
        assert run.state == "finished", (run.state, run.error)
        assert [s for s, _ in run.series("train/loss")] == list(range(1, 21))
        command = printed_command(ends[0])
        server.restart(same_port=True)  # answers again (its faults are gone)
        exp = assert_synced(trainer, result, server, command, username_for_key(KEY),
                            "internal-project", steps=20)
        assert [s for s, _ in user_metrics(exp)["train/loss"]] == list(range(1, 21))
        assert secret_places(result, server) == []


# -- 4. resume from a checkpoint continues the one experiment -----------------------------------


def test_resume_from_checkpoint_continues_the_cloud_experiment(trainer, tmp_path):
    with standin(tmp_path) as server:
        env = {"SWANLAB_API_KEY": KEY}
        first = trainer.run(name="resume", env=env, save_steps=5, **EXAMPLE_4, **hosts(server))
        assert first.returncode == 0, first.describe()
        original = only_run(first.log_dir)
        second = trainer.run(name="resume", env=env, save_steps=5, max_steps=15,
                             resume_from_checkpoint=str(first.run_dir / "out" / "checkpoint-10"),
                             **EXAMPLE_4, **hosts(server))
        assert second.returncode == 0, second.describe()
        assert any(f"Resuming SwanLab run {original.run_id} from step 10: metrics continue in "
                   "the same cloud run" in l for l in messages(second)), messages(second)
        exp = only_experiment(server.dump())
        assert exp["id"] == original.run_id
        assert (exp["created_count"], exp["resumed_count"]) == (1, 1)
        assert exp["states_received"] == ["FINISHED", "FINISHED"]
        runs = find_runs(second.log_dir)
        assert len(runs) == 2 and {r.run_id for r in runs} == {original.run_id}
        assert_complete(exp, second, runs, steps=15)
        assert unexpected_routes(server) == []
