"""Alerts and notifications on real `axolotl train` (issue 23): the helper process decides, the
real SwanLab senders post to stand-ins of every service on 127.0.0.1 (tools/notify_receivers.py;
the payload formats and signatures themselves are checked in tests/notify), and the training
never waits for them. Also the whole job's console: what Axolotl prints while loading the
dataset and while saving the model is in the run."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.support.receivers import receivers

from e2e_support import harness, messages, settled_run

INJECTIONS = Path(__file__).resolve().parent / "injections"

TOKEN = "e2eHOOK5ecret"
PASSWORD = f"pw-{TOKEN}"
ALL = ("lark", "dingtalk", "wecom", "slack", "discord", "telegram", "bark", "email")


@pytest.fixture
def hooks():
    with receivers.WebhookReceiver() as server:
        server.secrets.update(lark="lark-sign", dingtalk="SECding")
        yield server


@pytest.fixture
def smtp():
    with receivers.SmtpReceiver({"me@example.com": PASSWORD}) as server:
        yield server


def keys(hooks, smtp=None, channels=("slack", "discord")) -> dict:
    every = {
        "lark": dict(swanlab_lark_webhook_url=hooks.url("lark", TOKEN),
                     swanlab_lark_secret="lark-sign"),
        "dingtalk": dict(swanlab_dingtalk_webhook_url=hooks.url("dingtalk", TOKEN),
                         swanlab_dingtalk_secret="SECding"),
        "wecom": dict(swanlab_wecom_webhook_url=hooks.url("wecom", TOKEN)),
        "slack": dict(swanlab_slack_webhook_url=hooks.url("slack", TOKEN)),
        "discord": dict(swanlab_discord_webhook_url=hooks.url("discord", TOKEN)),
        "telegram": dict(swanlab_telegram_bot_token=f"123:{TOKEN}", swanlab_telegram_chat_id=-7),
        "bark": dict(swanlab_bark_key=f"bark{TOKEN}", swanlab_bark_server=hooks.url("bark")),
        "email": dict(swanlab_email_sender="me@example.com", swanlab_email_password=PASSWORD,
                      swanlab_email_receiver="you@example.com",
                      swanlab_email_smtp_server="127.0.0.1",
                      swanlab_email_smtp_port=smtp.port if smtp else 0),
    }
    out = {}
    for name in channels:
        out.update(every[name])
    return out


def environment(hooks, **more) -> dict:
    return {"SWANLAB_MODE": "offline", "SSL_CERT_FILE": str(receivers.CA_FILE),
            "SWANLAB_AUTOPATCH_TELEGRAM_API": hooks.url("telegram"), **more}


def sent(hooks, smtp, channel: str) -> list[str]:
    """The messages a channel received, as text (title first)."""
    if channel == "email":
        return [f"{m.message['subject']}\n{m.message.get_body(('plain',)).get_content()}"
                for m in smtp.mails()]
    field = {"lark": lambda b: b["content"]["text"], "dingtalk": lambda b: b["text"]["content"],
             "wecom": lambda b: b["text"]["content"], "slack": lambda b: b["text"],
             "discord": lambda b: b["content"], "telegram": lambda b: b["text"],
             "bark": lambda b: f"{b['title']}\n{b['body']}"}[channel]
    return [field(r.json) for r in hooks.requests(channel)]


def alert_lines(result) -> list[str]:
    return [x for x in messages(result) if "WARNING" in x and
            any(w in x for w in ("non-finite", "loss spike", "no progress", "resumed"))]


def no_secret(result, run) -> None:
    helper_log = (run.path / "debug" / "swanlab-autopatch-helper.log").read_text()
    for text in (result.output, helper_log):
        assert TOKEN not in text


def test_a_normal_run_sends_one_end_message_on_every_channel_and_no_alert(trainer, hooks, smtp):
    result = trainer.run(env=environment(hooks), swanlab_project="alerts-normal",
                         **keys(hooks, smtp, ALL))
    assert result.returncode == 0, result.describe()
    run = settled_run(result.log_dir)
    assert run.state == "finished"
    assert alert_lines(result) == [], messages(result)
    losses = harness.trainer_losses(result.run_dir)
    last_step, last_loss = losses[-1]
    hooks.wait_for(1, "bark", timeout=120)
    smtp.wait_for(1, timeout=120)
    for channel in ALL:
        texts = sent(hooks, smtp, channel)
        assert len(texts) == 1, (channel, texts)
        text = texts[0]
        assert f"{run.name} finished" in text.splitlines()[0], (channel, text)
        assert f"Training finished: {last_step} of 10 steps in " in text, (channel, text)
        assert f"Last train/loss: {last_loss:.4g} (step {last_step})" in text, (channel, text)
        assert "Run folder: " in text and str(run.path.name) in text, (channel, text)
    assert not [m for m in run.media if m["key"].startswith("alerts/") and m["key"] != "alerts/end"]
    no_secret(result, run)


def test_a_diverging_learning_rate_raises_one_nonfinite_alert_before_the_end(trainer, hooks):
    """A learning rate of 1e12 blows the weights up at the first update. transformers hides a
    non-finite loss in its log (logging_nan_inf_filter), but not the gradient norm."""
    result = trainer.run(env=environment(hooks), swanlab_project="alerts-nan",
                         learning_rate=1.0e12, **keys(hooks))
    assert result.returncode == 0, result.describe()
    run = settled_run(result.log_dir)
    series = {k: run.series(k) for k in ("train/loss", "train/grad_norm")}
    bad = sorted(step for values in series.values() for step, v in values if not math.isfinite(v))
    assert bad, f"the learning rate made nothing non-finite: {series}"
    lines = [x for x in alert_lines(result) if "non-finite" in x]
    assert len(lines) == 1 and f"at step {bad[0]}" in lines[0], messages(result)
    for channel in ("slack", "discord"):
        texts = hooks.wait_for(2, channel, timeout=120) and sent(hooks, None, channel)
        titles = [t.splitlines()[0] for t in texts]
        nonfinite = [t for t in titles if "non-finite" in t]
        assert len(nonfinite) == 1 and f"at step {bad[0]}" in nonfinite[0], titles
        assert titles.index(nonfinite[0]) < len(titles) - 1 and \
            titles[-1].endswith("finished"), titles
    record = [m for m in run.media if m["key"] == "alerts/nonfinite"]
    assert len(record) == 1 and record[0]["step"] == bad[0], record


def test_a_stopped_training_gets_a_stall_alert_and_a_resume_message(trainer, hooks):
    result = trainer.run(env=environment(hooks, PYTHONPATH=str(INJECTIONS / "stop_at_step4")),
                         swanlab_project="alerts-stall", swanlab_alert_stall_minutes=0.05,
                         **keys(hooks), timeout=600)
    assert result.returncode == 0, result.describe()
    run = settled_run(result.log_dir)
    assert run.state == "finished"
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    lines = alert_lines(result)
    stall = [x for x in lines if "no progress for" in x and "the last one was at step 3" in x]
    assert stall and any("progress resumed at step 4" in x for x in lines), lines
    titles = [t.splitlines()[0] for t in hooks.wait_for(3, "slack", timeout=120)
              and sent(hooks, None, "slack")]
    assert any("no progress for" in t for t in titles), titles
    assert any("progress resumed at step 4" in t for t in titles), titles


def test_a_killed_training_gets_a_killed_end_message_with_its_last_step(trainer, hooks):
    result = trainer.run(env=environment(hooks, PYTHONPATH=str(INJECTIONS / "kill_at_step6")),
                         swanlab_project="alerts-killed", **keys(hooks))
    assert result.returncode == -9, result.describe()
    run = settled_run(result.log_dir)
    last_step, last_loss = run.series("train/loss")[-1]
    assert last_step == 5
    for channel in ("slack", "discord"):
        texts = hooks.wait_for(1, channel, timeout=120) and sent(hooks, None, channel)
        assert len(texts) == 1, texts
        assert texts[0].splitlines()[0].endswith("was killed"), texts
        assert "at step 5" in texts[0] and \
            f"Last train/loss: {last_loss:.4g} (step 5)" in texts[0], texts


@pytest.mark.parametrize("fault", ["down", "500"])
def test_a_failing_channel_costs_one_warning_and_nothing_else(trainer, hooks, fault):
    hooks.faults["slack"] = fault
    result = trainer.run(env=environment(hooks), swanlab_project="alerts-fault",
                         learning_rate=1.0e12, **keys(hooks))
    assert result.returncode == 0, result.describe()
    run = settled_run(result.log_dir)
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    assert len(hooks.wait_for(2, "discord", timeout=120)) >= 2  # the other channel works
    log = (run.path / "debug" / "swanlab-autopatch-helper.log").read_text()
    assert log.count("Slack notification failed") == 1, log
    said = [x for x in messages(result) if "Slack notification failed" in x]
    assert len(said) <= 1, said  # said in the training's output once, if it was still there
    no_secret(result, run)


def test_the_console_record_has_the_dataset_loading_and_the_model_saving(trainer):
    result = trainer.run(env={"SWANLAB_MODE": "offline"}, swanlab_project="whole-console")
    assert result.returncode == 0, result.describe()
    run = settled_run(result.log_dir)
    printed = result.output.splitlines()
    console = "\n".join(run.console)

    def printed_with(*words):
        return [x for x in printed if all(w.lower() in x.lower() for w in words)]

    loading = printed_with("dataset") or printed_with("tokeniz")
    saving = printed_with("saving") or printed_with("saved")
    assert loading and saving, "\n".join(printed[-80:])
    first_step = min(i for i, x in enumerate(run.console) if "'loss'" in x or "loss" in x)
    assert any(_core(x) in console for x in loading), (loading, run.console[:40])
    assert any(_core(x) in console for x in saving), (saving, run.console[-40:])
    assert first_step > 0


def _core(line: str) -> str:
    """A printed line's words without the terminal's colours and a log line's time stamp."""
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
    return plain.split("] ", 1)[-1][-60:]
