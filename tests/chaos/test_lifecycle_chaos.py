"""Random sequences of what happens to trainings, against the helper process's lifecycle.

Each sequence is one training process (tests/support/training_driver.py: the package's real
callback in a Trainer-like loop, SwanLab's real client in the helper, offline) with a random mix
of: bursts of logs, console floods and progress-bar redraws, the user's own swanlab calls from
other threads, forks that exit before and after the run is up (normally and with os._exit),
SIGINT / SIGHUP / SIGTERM / SIGSTOP+SIGCONT to the helper, SIGKILL / SIGTERM of the training,
run objects kept and used after the end, and a reader of the training's stdout and stderr.

After every sequence: every metric point is in the run exactly once at its step, or counted
in a warning; the end state matches what happened to the training; no file opened after the end
was written to; the helper exits within its bound; the training's outputs close within 2 s of
its exit.

The sequences are seeded: ``SWANLAB_AUTOPATCH_CHAOS_SEED`` (default: a new one per run, printed)
and ``SWANLAB_AUTOPATCH_CHAOS_RUNS`` (default 200). A failure prints the seed and the plan;
rerun one with ``SWANLAB_AUTOPATCH_CHAOS_SEED=<seed> SWANLAB_AUTOPATCH_CHAOS_RUNS=1``.
"""
from __future__ import annotations

import json
import os
import random
import re

import pytest

from tests.support.driving import continue_helper, drive, settle

RUNS = int(os.environ.get("SWANLAB_AUTOPATCH_CHAOS_RUNS", "200"))
BASE_SEED = int(os.environ.get("SWANLAB_AUTOPATCH_CHAOS_SEED")
                or random.SystemRandom().randrange(1 << 30))


def plan_for(seed: int) -> dict:
    rng = random.Random(seed)
    steps = rng.choice([20, 60, 150, 300]) if rng.random() < 0.9 else 5000  # sometimes a burst
    events: dict[int, list[str]] = {}

    def at(step: int, *actions: str) -> None:
        events.setdefault(max(1, min(step, steps)), []).extend(actions)

    plan: dict = {"steps": steps, "seed": seed}
    plan["print"] = rng.choice([None, "line", "redraw", "flood"] if steps < 5000
                               else [None, "line"])
    if plan["print"] == "flood":
        plan["flood_width"] = rng.choice([500, 4000, 30000])
    plan["user"] = rng.random() < 0.5
    plan["import_first"] = rng.random() < 0.2
    if rng.random() < 0.3:
        plan["user_thread"] = rng.choice([50, 300])
        plan["import_first"] = True
    if rng.random() < 0.4:
        at(rng.randrange(1, steps + 1), "wait_ready")
    # SIGTERM gives the helper a grace of 20 s of wall time, stopped or not: a helper both
    # terminated and stopped for long may rightly end the run aborted, so not both here.
    signals = rng.sample(["int_helper", "hup_helper", rng.choice(["stopcont", "term_helper"])],
                         rng.choice([0, 0, 1, 2, 3]))
    for name in signals:
        step = rng.randrange(1, steps + 1)
        if name == "stopcont":
            at(step, "stop_helper")
            if rng.random() < 0.5:  # else it is continued once the training has exited
                at(rng.randrange(step, steps + 1), "cont_helper")
        else:
            at(step, name)
    for _ in range(rng.choice([0, 0, 1, 2])):
        at(rng.choice([1, rng.randrange(1, steps + 1)]),
           rng.choice(["fork_exit", "fork_os_exit", "fork_log"]))
    ending = rng.choices(["normal", "kill_self", "term_self"], [0.7, 0.15, 0.15])[0]
    plan["ending"] = ending
    if ending != "normal":
        plan["end_step"] = rng.randrange(1, steps + 1)
        at(plan["end_step"], ending)
    elif plan["user"]:
        plan["after_end"] = ["kept_log"]
    plan["events"] = {str(k): v for k, v in events.items()}
    plan["finish_timeout"] = rng.choice(["1", "3", "60"])
    plan["signals"] = signals
    return plan


def _done(plan: dict) -> list[str]:
    """The actions the training took before it ended (events run in order, after their step)."""
    done = []
    for step in sorted(int(k) for k in plan["events"]):
        for action in plan["events"][str(step)]:
            if action in ("kill_self", "term_self"):
                return done
            done.append(action)
    return done


def _dropped_points(messages: list[str]) -> int:
    for line in messages:
        match = re.search(r"(\d+) metric values? ", line)
        if match and "dropped" in line:
            return int(match.group(1))
    return 0


@pytest.mark.parametrize("index", range(RUNS))
def test_lifecycle_sequence(tmp_path, index):
    seed = BASE_SEED + index
    plan = plan_for(seed)
    context = f"seed {seed} (rerun: SWANLAB_AUTOPATCH_CHAOS_SEED={seed} " \
              f"SWANLAB_AUTOPATCH_CHAOS_RUNS=1)\nplan: {json.dumps(plan)}"
    driven = drive(tmp_path, plan, timeout=600, on_exit=continue_helper,
                   env={"SWANLAB_AUTOPATCH_FINISH_TIMEOUT": plan["finish_timeout"]})
    context += f"\nexit {driven.returncode}\nstderr tail:\n{driven.stderr[-4000:]}"
    # The training's outputs close with it, whatever the helper still does.
    assert driven.outputs_closed_within() < 2.0, f"outputs open after exit\n{context}"
    ending = plan["ending"]
    expected_code = {"normal": 0, "kill_self": -9, "term_self": -15}[ending]
    assert driven.returncode == expected_code, context
    run = settle(driven, timeout=180)
    context += f"\nrun {run.path} state {run.state} error {run.error!r}"
    # The end state says what happened to the training.
    helper_terminated = "term_helper" in _done(plan)
    expected_state = {"normal": "finished", "term_self": "aborted",
                      "kill_self": "aborted" if helper_terminated else "crashed"}[ending]
    assert run.state == expected_state, context
    # Every point once at its step, with its value; what is missing is counted in a warning.
    last = plan["steps"] if ending == "normal" else plan["end_step"]
    series = run.series("train/loss")
    steps = [step for step, _ in series]
    assert len(steps) == len(set(steps)), f"a step twice\n{context}"
    assert all(abs(value - 10.0 / step) < 1e-9 for step, value in series), context
    assert set(steps) <= set(range(1, last + 1)), context
    missing = last - len(steps)
    if ending == "normal":
        assert missing * 2 == _dropped_points(driven.messages()), \
            f"{missing} points missing, not counted\n{context}"
    elif not (plan["print"] == "flood" or "stop_helper" in _done(plan)):
        assert missing == 0, f"{missing} points of a killed training missing\n{context}"
    # No byte of ours in a file opened after the end; nothing of the children in the run.
    for canary in driven.out.glob("canary*"):
        assert canary.stat().st_size == 0, f"{canary} was written to\n{context}"
    assert "child/value" not in run.scalars, context
    saved = driven.out / "model" / ".swanlab-autopatch-run.json"
    if saved.exists():
        assert run.run_id in saved.read_text(), context
    if plan.get("user_thread") and ending == "normal":
        thread = [step for step, _ in run.series("user/thread")]
        assert len(thread) == len(set(thread)), context
