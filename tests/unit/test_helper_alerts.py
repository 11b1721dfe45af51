"""Alerts during the run, decided in the real helper process (helper/alerting.py) from what the
training sends, driven through the Trainer callback (tests/support/training_driver.py) with
SwanLab's real client and SwanLab's real senders posting to local stand-ins of Slack and Discord
(tools/notify_receivers.py): each alert is one line in the training's output, a text record in
the run and a message on every channel; a killed training still gets its end message; a failing
channel costs one warning and nothing else."""
from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from tests.support.receivers import receivers

from tests.support.driving import drive, settle


TOKEN = "hookCANARY77"


@pytest.fixture
def hooks():
    with receivers.WebhookReceiver() as server:
        yield server


def channels(hooks, **more) -> dict:
    return {"swanlab_slack_webhook_url": hooks.url("slack", TOKEN),
            "swanlab_discord_webhook_url": hooks.url("discord", TOKEN), **more}


def texts(hooks, channel: str) -> list[str]:
    key = "text" if channel == "slack" else "content"
    return [r.json[key] for r in hooks.requests(channel)]


def alert_lines(driven) -> list[str]:
    return [x for x in driven.messages() if "WARNING" in x and
            any(word in x for word in ("non-finite", "spike", "no progress", "resumed"))]


def test_nonfinite_spike_stall_and_resume_reach_the_output_the_run_and_every_channel(
        tmp_path, hooks):
    """NaN at step 6, a spike at step 30, a stall after step 35 (the training waits until the
    helper has said so: the clock is the helper's, not the test's), then the end."""
    plan = {"steps": 40, "loss_at": {"6": "nan", "30": 50.0},
            "settings": channels(hooks, swanlab_alert_stall_minutes=0.05),
            "events": {"35": ["wait_helper_log:no progress for"]}}
    driven = drive(tmp_path, plan)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    assert driven.report.get("not_seen") is None, driven.report
    assert run.state == "finished"
    # Every point is kept, the NaN too.
    assert len(run.series("train/loss")) == 40

    lines = alert_lines(driven)
    assert any("non-finite train/loss at step 6" in x for x in lines), lines
    assert any("loss spike at step 30" in x for x in lines), lines
    assert any("no progress for" in x and "the last one was at step 35" in x for x in lines), lines
    assert any("progress resumed at step 36" in x for x in lines), lines
    assert all(x.startswith("[swanlab-autopatch] WARNING: ") for x in lines), lines

    for channel in ("slack", "discord"):
        hooks.wait_for(5, channel)
        sent = texts(hooks, channel)
        titles = [t.splitlines()[0] for t in sent]
        assert any("non-finite train/loss at step 6" in t for t in titles), titles
        assert any("loss spike at step 30" in t for t in titles), titles
        assert any("no progress for" in t for t in titles), titles
        assert any("progress resumed at step 36" in t for t in titles), titles
        assert titles[-1].endswith("finished"), titles  # the end-of-run summary, last
        assert "Training finished: 40 steps" in sent[-1], sent[-1]

    records = {m["key"]: m for m in run.media if m["key"].startswith("alerts/")}
    assert set(records) >= {"alerts/nonfinite", "alerts/loss_spike", "alerts/stall",
                            "alerts/resumed", "alerts/end"}, list(records)
    assert records["alerts/nonfinite"]["step"] == 6
    assert "train/loss = NaN" in str(records["alerts/nonfinite"].get("text")), records
    assert TOKEN not in driven.stdout + driven.stderr


def test_alerts_false_keeps_only_the_end_message(tmp_path, hooks):
    plan = {"steps": 12, "loss_at": {"6": "nan"},
            "settings": channels(hooks, swanlab_alerts=False)}
    driven = drive(tmp_path, plan)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    assert alert_lines(driven) == []
    assert [m["key"] for m in run.media if m["key"].startswith("alerts/")] == ["alerts/end"]
    sent = texts(hooks.wait_for(1, "slack") and hooks, "slack")
    assert len(sent) == 1 and sent[0].splitlines()[0].endswith("finished"), sent


def test_a_killed_training_gets_its_end_message_with_the_last_step_and_loss(tmp_path, hooks):
    driven = drive(tmp_path, {"settings": channels(hooks), "events": {"12": ["kill_self"]}})
    run = settle(driven)
    assert driven.returncode == -9
    assert run.state == "crashed"
    for channel in ("slack", "discord"):
        sent = texts(hooks.wait_for(1, channel) and hooks, channel)
        assert len(sent) == 1, sent
        title, *body = sent[0].splitlines()
        assert title.endswith("was killed"), sent[0]
        assert "at step 12" in sent[0] and "Last train/loss: 0.8333 (step 12)" in sent[0], sent


def test_a_stopped_training_is_a_stall_noticed_by_the_helper(tmp_path, hooks):
    """The training stops itself (SIGSTOP, what a hung collective looks like from outside);
    the helper, which outlives it, says so; continued, it finishes."""
    plan = {"steps": 10, "settings": channels(hooks, swanlab_alert_stall_minutes=0.05),
            "events": {"5": ["wait_ready", "stop_self"]}}

    def continue_when_told():
        hooks.wait_for(1, "slack", timeout=120)
        os.kill(json.loads((tmp_path / "out" / "driver.json").read_text())["pid"],
                signal.SIGCONT)

    waiter = threading.Thread(target=continue_when_told, daemon=True)
    waiter.start()
    driven = drive(tmp_path, plan)
    waiter.join(5)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    assert run.state == "finished"
    titles = [t.splitlines()[0] for t in texts(hooks.wait_for(3, "slack") and hooks, "slack")]
    assert "no progress for" in titles[0] and "progress resumed at step 6" in titles[1], titles


def test_a_failing_channel_costs_one_warning_and_nothing_else(tmp_path, hooks):
    hooks.faults["slack"] = "500"
    plan = {"steps": 30, "loss_at": {"3": "nan", "4": "nan", "20": "inf"},
            "settings": channels(hooks)}
    driven = drive(tmp_path, plan)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    assert run.state == "finished" and len(run.series("train/loss")) == 30
    discord = texts(hooks.wait_for(2, "discord") and hooks, "discord")
    assert any("non-finite train/loss at step 3" in t for t in discord), discord
    failed = [x for x in driven.messages() if "Slack notification failed" in x]
    assert len(failed) <= 1, failed  # the helper says it once (the training may have gone)
    log = (run.path / "debug" / "swanlab-autopatch-helper.log").read_text()
    assert log.count("Slack notification failed") == 1, log
    assert TOKEN not in log


def test_the_planned_steps_come_from_the_runs_config():
    from swanlab_autopatch.helper.alerting import total_steps

    assert total_steps({"max_steps": 500}) == 500
    assert total_steps({"max_steps": None, "trainer_args": {"max_steps": 80}}) == 80
    assert total_steps({"max_steps": -1, "trainer_args": {"max_steps": -1}}) is None  # epochs
    assert total_steps({"trainer_args": None}) is None
