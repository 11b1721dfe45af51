"""Ray Train (`use_ray: true`) on CPU, Axolotl 0.19.0 with Ray 2.60: one run per job, in the
launch folder's ./swanlog (not the Ray worker's folder), the YAML's key reaching the rank-0
worker without entering the config sent to Ray or any file Ray writes, the driver's messages
once, and a resumed Ray job continuing its run.

Axolotl asks Ray for a GPU whatever `resources_per_worker` says; the test-only injection
tests/e2e/injections/ray_cpu makes `use_gpu` follow `resources_per_worker` (the package never
changes Axolotl's scaling). Ray trainings take the lock "ray": one local Ray cluster at a time.
"""
from __future__ import annotations

import glob
from pathlib import Path

import pytest

from e2e_support import harness, messages, only_run, settled_run
from test_faults import INJECTIONS

RAY = "0.19.0-ray"
# RAY_worker_niceness: Ray starts its worker processes (the training itself runs in one) at
# nice 15, so on a machine where anything else keeps the CPUs busy they get a small fraction
# of a core: a 1-minute test took over 10 minutes beside two CPU-bound processes, and Ray's
# own start-up timeouts fired. At 0, as Ray's job manager sets it for job drivers
# (ray/dashboard/modules/job/job_manager.py, 2.60), the test is as fast as the machine.
CPU = {"PYTHONPATH": str(INJECTIONS / "ray_cpu"), "RAY_DEDUP_LOGS": "0",
       "RAY_worker_niceness": "0"}
CANARY = "sk-ray-CANARY-71c3"


def ray_config(**overrides):
    return {"use_ray": True, "ray_num_workers": 1, "resources_per_worker": {"CPU": 1},
            **overrides}


@pytest.fixture
def ray_trainer(trainer_for):
    return trainer_for(RAY)


def train(ray_trainer, **kw):
    with harness._locked("ray"):
        return ray_trainer.run(**kw)


def ray_files() -> list[Path]:
    return [Path(p) for p in glob.glob("/tmp/ray/session_*/**/*", recursive=True)
            if Path(p).is_file()]


def test_one_run_in_the_launch_folder(ray_trainer):
    result = train(ray_trainer, launcher="axolotl", env={**CPU, "SWANLAB_MODE": "offline"},
                   swanlab_project="ray-offline", **ray_config())
    assert result.returncode == 0, result.describe()
    run = settled_run(result.log_dir)  # <launch folder>/swanlog, not Ray's session folder
    assert run.state == "finished", (run.state, run.error)
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    resume_file = result.run_dir / "out" / ".swanlab-autopatch-run.json"
    assert resume_file.is_file() and run.run_id in resume_file.read_text()


def test_two_workers_one_run_and_the_driver_says_so_once(ray_trainer):
    result = train(ray_trainer, launcher="axolotl", extra_args=("--use-ray",),
                   env={**CPU, "SWANLAB_MODE": "offline", "ACCELERATE_USE_CPU": "true"},
                   swanlab_project="ray-two", max_memory={"cpu": "8GiB"},
                   **ray_config(ray_num_workers=2))
    assert result.returncode == 0, result.describe()
    run = settled_run(result.log_dir)
    assert run.state == "finished"
    assert len(run.series("train/loss")) == 10
    lines = messages(result)
    for text in ("Distributed training detected (world_size=2)", "SwanLab mode: offline",
                 "Only rank 0 will initialize SwanLab"):
        assert sum(text in line for line in lines) == 1, (text, lines)


def test_yaml_key_reaches_the_worker_and_nothing_ray_writes(ray_trainer, tmp_path):
    """The key is only in the YAML. The rank-0 worker logs in with it: the SwanLab server
    stand-in holds the job's one experiment with every step; and no file Ray writes holds it."""
    from swanlab_server import StandIn  # tools/ is on sys.path (e2e_support)

    before = set(ray_files())
    with StandIn(tmp_path / "store", api_keys=[CANARY]) as server:
        result = train(ray_trainer, launcher="axolotl", env=CPU, swanlab_project="ray-cloud",
                       swanlab_mode="cloud", swanlab_api_key=CANARY,
                       swanlab_api_host=server.url, swanlab_web_host=server.url,
                       **ray_config())
        assert result.returncode == 0, result.describe()
        assert not any("could not start" in line for line in messages(result)), \
            messages(result)
        (experiment,) = server.dump()["experiments"]
    assert experiment["project"] == "ray-cloud" and experiment["state"] == "FINISHED"
    losses = harness.trainer_losses(result.run_dir)
    assert [tuple(p) for p in experiment["metrics"]["train/loss"]] == \
        [(s, float(v)) for s, v in losses]
    assert CANARY not in result.output
    new = [p for p in ray_files() if p not in before]
    assert new, "Ray wrote no session files: the test would prove nothing"
    leaked = [p for p in new + [p for p in result.run_dir.rglob("*") if p.is_file()]
              if p.name != "cfg.yaml" and CANARY.encode() in p.read_bytes()]
    assert leaked == [], leaked


def test_resumed_ray_job_continues_its_run(ray_trainer):
    env = {**CPU, "SWANLAB_MODE": "offline"}
    first = train(ray_trainer, launcher="axolotl", env=env, name="resume",
                  swanlab_project="ray-resume", save_steps=5, **ray_config())
    assert first.returncode == 0, first.describe()
    original = only_run(first.log_dir)
    second = train(ray_trainer, launcher="axolotl", env=env, name="resume",
                   swanlab_project="ray-resume", save_steps=5, max_steps=15,
                   resume_from_checkpoint=str(first.run_dir / "out" / "checkpoint-10"),
                   **ray_config())
    assert second.returncode == 0, second.describe()
    from swanlab_autopatch.runs.reader import find_runs

    runs = find_runs(second.log_dir)
    assert {r.run_id for r in runs} == {original.run_id}, [(r.path, r.run_id) for r in runs]
    resumed = next(r for r in runs if r.path != original.path)
    assert [s for s, _ in resumed.series("train/loss")] == list(range(11, 16))
