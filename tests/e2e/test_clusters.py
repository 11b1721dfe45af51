"""Jobs bigger than one process: a two-node torchrun job (both "nodes" on this machine), and
preemption (SIGTERM, SIGINT) with the requeued job continuing its run. Real Axolotl 0.19.0."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from e2e_support import harness, messages, only_run, settled_run
from swanlab_autopatch.runs.reader import find_runs
from test_faults import INJECTIONS

OFFLINE = {"SWANLAB_MODE": "offline"}
DISTRIBUTED = ("Distributed training detected (world_size=2)", "SwanLab mode: offline",
               "Only rank 0 will initialize SwanLab",
               "Other ranks will skip SwanLab to avoid conflicts")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_nodes(trainer, root: Path, same_folder: bool):
    """`torchrun --nnodes 2 --node_rank 0|1 --nproc_per_node 1` on one master, as two nodes
    would run it; node 1 starts in another folder when ``same_folder`` is False."""
    cfg = trainer.config(root, swanlab_project="two-nodes", max_memory={"cpu": "8GiB"})
    cfg_path = harness.write_config(root / "cfg.yaml", cfg)
    port = free_port()
    procs = []
    for node in (0, 1):
        cwd = root if (node == 0 or same_folder) else root / "node1"
        cwd.mkdir(parents=True, exist_ok=True)
        env = harness.training_env(trainer.venv, {**OFFLINE, "ACCELERATE_USE_CPU": "true"},
                                   swanlab_root=root / ".swanlab-root")
        command = [str(trainer.venv / "bin" / "torchrun"), "--nnodes", "2", "--node_rank",
                   str(node), "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
                   "--master_port", str(port), "-m", "axolotl.cli.train", str(cfg_path)]
        procs.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True,
                                      stdin=subprocess.DEVNULL))
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            outputs.append((proc.returncode, out))
    finally:  # a node that did not end in time (or a failed wait) leaves nothing running
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


@pytest.mark.parametrize("same_folder", [True, False], ids=["same-folder", "other-folder"])
def test_two_node_torchrun_job_gives_one_run(trainer, tmp_path, same_folder):
    (rc0, out0), (rc1, out1) = two_nodes(trainer, tmp_path, same_folder)
    assert rc0 == 0 and rc1 == 0, out0[-3000:] + out1[-3000:]
    run = only_run(tmp_path / "swanlog")  # exactly one run, on the node of global rank 0
    assert run.state == "finished"
    assert [s for s, _ in run.series("train/loss")] == list(range(1, 11))
    assert run.config["parallel"]["world_size"] == 2
    if not same_folder:
        assert not (tmp_path / "node1" / "swanlog").exists()
    ours0 = [line for line in out0.splitlines() if "[swanlab-autopatch]" in line]
    ours1 = [line for line in out1.splitlines() if "[swanlab-autopatch]" in line]
    for text in DISTRIBUTED:
        assert sum(text in line for line in ours0) == 1, (text, ours0)
    assert ours1 == [], ours1  # node 1 (global rank 1, LOCAL_RANK 0) says nothing


@pytest.mark.parametrize("signal_name, state", [("SIGTERM", ("aborted", "crashed")),
                                                ("SIGINT", ("aborted",))])
def test_preempted_training_keeps_its_behaviour_and_ends_the_run(trainer, signal_name, state):
    """The training's own behaviour (exit status, what is saved) is what it is without the
    package; the run ends with a state that says so, with every step logged until then; the
    requeued job (auto_resume_from_checkpoints) continues the same run."""
    inject = {"PYTHONPATH": str(INJECTIONS / "term_at_step6"), "INJECT_SIGNAL": signal_name}
    bare = trainer.run(env={**OFFLINE, **inject, "SWANLAB_AUTOPATCH": "0"}, name="bare",
                       swanlab_project="preempt", save_steps=2)
    tracked = trainer.run(env={**OFFLINE, **inject}, name="tracked", swanlab_project="preempt",
                          save_steps=2)
    # SIGTERM kills (-15); Axolotl's own SIGINT handler saves the model and exits 0.
    assert tracked.returncode == bare.returncode, (bare.describe(), tracked.describe())
    assert bare.returncode == (-15 if signal_name == "SIGTERM" else 0), bare.describe()

    def saved(result):
        out = result.run_dir / "out"
        return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                      if p.is_file() and p.name != ".swanlab-autopatch-run.json")

    assert saved(tracked) == saved(bare)
    assert {"checkpoint-2", "checkpoint-4"} <= {p.split("/")[0] for p in saved(bare)}
    run = settled_run(tracked.log_dir)
    assert run.state in state, (run.state, run.error)
    assert [s for s, _ in run.series("train/loss")] == [1, 2, 3, 4, 5]

    requeued = trainer.run(env=OFFLINE, name="tracked", swanlab_project="preempt", save_steps=2,
                           auto_resume_from_checkpoints=True)
    assert requeued.returncode == 0, requeued.describe()
    runs = find_runs(requeued.log_dir)
    assert {r.run_id for r in runs} == {run.run_id}, [(r.path, r.run_id) for r in runs]
    continued = next(r for r in runs if r.path != run.path)
    assert [s for s, _ in continued.series("train/loss")] == list(range(5, 11))
    assert any(f"Resuming SwanLab run {run.run_id}" in line for line in messages(requeued))
