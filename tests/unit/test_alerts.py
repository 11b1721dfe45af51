"""The alert rules (swanlab_autopatch/helper/alerts.py): fed metrics and a made-up clock, each
rule fires when it should, once per condition and per quiet period, in English and Chinese,
and the end of the run is summed up once."""
from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from swanlab_autopatch.config.settings import parse
from swanlab_autopatch.helper.alerts import Alert, AlertConfig, AlertRules

NAN, INF = float("nan"), float("inf")
URL = "https://swanlab.cn/@me/demo/runs/abc123"


def rules(language="en", **config) -> AlertRules:
    r = AlertRules(AlertConfig(language=language, **config))
    r.on_start(0.0, name="gentle-tiger-13", project="demo", url=URL, total_steps=500)
    return r


def feed(r: AlertRules, steps, loss=1.0, **extra) -> list[Alert]:
    """Log `train/loss` (and extra metrics) at each step, one second apart."""
    out = []
    for step in steps:
        out += r.on_metrics(step, {"train/loss": loss, "train/grad_norm": 0.5, **extra},
                            float(step))
    return out


def kinds(alerts) -> list[str]:
    return [a.kind for a in alerts]


# -- non-finite loss or gradient norm --------------------------------------------------------


@pytest.mark.parametrize("metric, value, shown", [
    ("train/loss", NAN, "NaN"), ("train/grad_norm", INF, "inf"), ("train/grad_norm", -INF, "-inf"),
    ("eval/loss", NAN, "NaN"),
])
def test_a_non_finite_value_is_reported_with_its_step(metric, value, shown):
    r = rules()
    assert feed(r, range(1, 6)) == []
    alerts = r.on_metrics(6, {"train/loss": 1.0, "train/grad_norm": 0.5, metric: value}, 6.0)
    assert kinds(alerts) == ["nonfinite"]
    alert = alerts[0]
    assert alert.step == 6 and alert.level == "warning"
    assert metric in alert.title and "step 6" in alert.title and "gentle-tiger-13" in alert.title
    assert f"{metric} = {shown} at step 6" in alert.text
    assert alert.text.endswith(f"Run: {URL}")


def test_several_non_finite_values_make_one_alert():
    alerts = rules().on_metrics(3, {"train/loss": NAN, "train/grad_norm": INF}, 3.0)
    assert kinds(alerts) == ["nonfinite"]
    assert "train/loss = NaN, train/grad_norm = inf" in alerts[0].text


def test_a_gradient_norm_alone_explains_the_fp16_loss_scaler():
    alert, = rules().on_metrics(3, {"train/loss": 1.0, "train/grad_norm": INF}, 3.0)
    assert "loss scaler" in alert.text
    alert, = rules().on_metrics(3, {"train/loss": NAN, "train/grad_norm": INF}, 3.0)
    assert "loss scaler" not in alert.text


def test_a_lasting_non_finite_loss_is_one_alert():
    r = rules()
    assert kinds(feed(r, range(1, 400), loss=NAN)) == ["nonfinite"]


def test_a_non_finite_value_that_comes_back_waits_for_the_quiet_period():
    r = rules(quiet_steps=100)
    assert kinds(r.on_metrics(10, {"train/loss": NAN}, 10)) == ["nonfinite"]
    assert r.on_metrics(11, {"train/loss": 1.0}, 11) == []  # cleared
    assert r.on_metrics(50, {"train/loss": NAN}, 50) == []  # back within 100 steps: quiet
    assert r.on_metrics(51, {"train/loss": 1.0}, 51) == []
    alerts = r.on_metrics(110, {"train/loss": NAN}, 110)  # back after 100 steps
    assert kinds(alerts) == ["nonfinite"] and alerts[0].step == 110


def test_other_values_are_ignored():
    r = rules()
    assert r.on_metrics(1, {"train/loss": "nan", "train/grad_norm": True,
                            "train/learning_rate": NAN, "eval/runtime": INF}, 1.0) == []


# -- loss spikes ---------------------------------------------------------------------------------


def test_a_loss_above_the_factor_times_the_median_is_a_spike():
    r = rules()
    feed(r, range(1, 21), loss=2.0)
    assert r.on_metrics(21, {"train/loss": 5.9}, 21.0) == []  # 2.95x
    alerts = r.on_metrics(22, {"train/loss": 7.0}, 22.0)  # 3.5x
    assert kinds(alerts) == ["loss_spike"]
    text = alerts[0].text
    assert "train/loss 7 at step 22 is 3.5x the median (2) of the last 20 logged values" in text
    assert "3x" in text and "swanlab_alert_loss_spike" in text and alerts[0].step == 22


def test_the_median_is_of_the_recent_window():
    r = rules(window=5)
    feed(r, range(1, 50), loss=10.0)
    feed(r, range(50, 55), loss=1.0)  # the window now holds only these
    assert kinds(r.on_metrics(55, {"train/loss": 3.5}, 55.0)) == ["loss_spike"]


def test_no_spike_is_judged_on_too_few_values_or_a_non_positive_median():
    r = rules(min_window=5)
    feed(r, range(1, 5), loss=1.0)
    assert r.on_metrics(5, {"train/loss": 100.0}, 5.0) == []  # only 4 values before it
    r = rules()
    feed(r, range(1, 21), loss=-0.5)  # RL objectives can be negative
    assert r.on_metrics(21, {"train/loss": 50.0}, 21.0) == []


def test_spikes_respect_the_quiet_period_and_can_be_off():
    r = rules(quiet_steps=100)
    feed(r, range(1, 21), loss=1.0)
    assert kinds(r.on_metrics(21, {"train/loss": 10.0}, 21)) == ["loss_spike"]
    feed(r, range(22, 40), loss=1.0)
    assert r.on_metrics(40, {"train/loss": 10.0}, 40) == []
    feed(r, range(41, 121), loss=1.0)
    assert kinds(r.on_metrics(121, {"train/loss": 10.0}, 121)) == ["loss_spike"]
    r = rules(loss_spike=None)
    feed(r, range(1, 21), loss=1.0)
    assert r.on_metrics(21, {"train/loss": 1000.0}, 21) == []


# -- stalls --------------------------------------------------------------------------------------


def test_a_stall_is_reported_once_while_the_training_is_alive_then_its_end():
    r = rules(stall_minutes=0.5)  # 30 s
    feed(r, range(1, 11))  # last log at t=10
    assert r.on_tick(39.0, True) == []
    assert r.on_tick(45.0, False) == []  # the training process is gone: not a stall
    alerts = r.on_tick(41.0, True)
    assert kinds(alerts) == ["stall"] and alerts[0].step == 10
    assert "No Trainer log for 31 s" in alerts[0].text and "step 10" in alerts[0].text
    assert "swanlab_alert_stall_minutes = 0.5" in alerts[0].text
    assert r.on_tick(100.0, True) == [] and r.on_tick(1000.0, True) == []  # once
    alerts = r.on_metrics(11, {"train/loss": 1.0}, 1210.0)
    assert kinds(alerts) == ["resumed"] and alerts[0].step == 11
    assert "after 20 min without one" in alerts[0].text
    assert kinds(r.on_tick(1245.0, True)) == ["stall"]  # a second stall after the resume


def test_a_stall_before_the_first_log_counts_from_the_start():
    r = rules(stall_minutes=1)
    alert, = r.on_tick(61.0, True)
    assert alert.kind == "stall" and alert.step is None
    assert "none since training started" in alert.text


def test_stall_alerts_can_be_off():
    r = rules(stall_minutes=None)
    assert r.on_tick(10_000.0, True) == []


def test_alerts_off_leaves_only_the_end_message():
    r = rules(alerts=False, stall_minutes=0.01)
    assert feed(r, range(1, 21), loss=1.0) == []
    assert r.on_metrics(21, {"train/loss": NAN}, 21) == []
    assert r.on_metrics(22, {"train/loss": 50.0}, 22) == []
    assert r.on_tick(1000.0, True) == [] and r.on_metrics(23, {"train/loss": 1.0}, 1001) == []
    end, = r.on_end("finished", 1002.0)
    assert end.kind == "end" and "Last train/loss: 1 (step 23)" in end.text


# -- the end of the run --------------------------------------------------------------------------


def test_a_finished_run():
    r = rules()
    feed(r, range(1, 100), loss=1.5)
    r.on_metrics(50, {"eval/loss": 1.9}, 50.0)
    r.on_metrics(99, {"eval/loss": 1.7}, 99.0)
    r.on_metrics(100, {"train/loss": 0.9}, 100.0)
    r.on_metrics(100, {"eval/loss": 1.8}, 100.0)
    end, = r.on_end("finished", 7530.0)
    assert (end.kind, end.level, end.step) == ("end", "info", 100)
    assert end.title == "demo/gentle-tiger-13 finished"
    assert end.text.splitlines() == [
        "Training finished: 100 of 500 steps in 2 h 05 min.",
        "Last train/loss: 0.9 (step 100).",
        "Best eval/loss: 1.7 (step 99).",
        f"Run: {URL}",
    ]
    assert r.on_end("finished", 7531.0) == []  # once per run
    assert r.on_metrics(101, {"train/loss": NAN}, 7532.0) == [] and r.on_tick(9e9, True) == []


def test_a_crash_gives_the_exception_line():
    r = rules()
    feed(r, range(1, 8), loss=2.25)
    traceback = ("Traceback (most recent call last):\n  File \"train.py\", line 3\n"
                 "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n\n")
    end, = r.on_end("crashed", 65.0, error=traceback)
    assert end.title.endswith("crashed") and end.level == "warning"
    assert end.text.splitlines()[0] == ("Training crashed at step 7 after 1 min 5 s: "
                                        "torch.OutOfMemoryError: CUDA out of memory. Tried to "
                                        "allocate 2.00 GiB")
    end, = rules().on_end("crashed", 5.0, error="E" * 1000)
    assert len(end.text.splitlines()[0]) < 400 and end.text.splitlines()[0].endswith("...")
    end, = rules().on_end("crashed", 5.0)
    assert end.text.splitlines()[0] == "Training crashed before its first logged step after 5 s."


def test_an_aborted_and_a_killed_run_say_so_with_the_last_step_and_loss():
    r = rules()
    feed(r, range(1, 13), loss=0.75)
    end, = r.on_end("aborted", 30.0, detail="SIGTERM")
    assert end.title.endswith("was stopped")
    assert end.text.startswith("Training was stopped (SIGTERM) at step 12 after 30 s.")
    r = rules()
    feed(r, range(1, 7), loss=0.75)
    end, = r.on_end("killed", 30.0)
    assert end.title.endswith("was killed") and end.step == 6
    assert "ended without finishing at step 6" in end.text and "SIGKILL" in end.text
    assert "Last train/loss: 0.75 (step 6)." in end.text


def test_the_folder_is_where_to_look_without_a_url_and_states_have_aliases():
    r = AlertRules(AlertConfig())
    r.on_start(0.0, folder="/data/swanlog/run-20260101_000000-abc")
    end, = r.on_end("success", 3.0)
    assert end.title == "SwanLab run finished" and "no step logged" in end.text
    assert end.text.endswith("Run folder: /data/swanlog/run-20260101_000000-abc")
    end, = AlertRules(AlertConfig()).on_end("exploded", 1.0)  # unknown: crashed
    assert end.title.endswith("crashed")


# -- the shape of an alert, the languages, the settings -------------------------------------------


def test_an_alert_is_one_line_for_the_output_and_a_text_record_in_the_run():
    alert, = rules().on_metrics(3, {"train/loss": NAN}, 3.0)
    assert "\n" not in alert.line and alert.line.startswith(alert.title + ": ")
    assert alert.record_key == "alerts/nonfinite"


def _every_message(language: str) -> list[Alert]:
    out = []
    r = rules(language, stall_minutes=1)
    out += feed(r, range(1, 21), loss=1.0)
    out += r.on_metrics(21, {"train/loss": 5.0}, 21.0)
    out += r.on_metrics(22, {"train/loss": NAN, "train/grad_norm": INF}, 22.0)
    out += r.on_metrics(23, {"train/loss": 1.0, "eval/loss": 1.2}, 23.0)
    out += r.on_tick(200.0, True)
    out += r.on_metrics(24, {"train/loss": 1.0}, 300.0)
    out += r.on_end("finished", 400.0)
    for state in ("crashed", "aborted", "killed"):
        r = rules(language)
        feed(r, [1])
        out += r.on_end(state, 3.0, error="ValueError: bad", detail="SIGTERM")
    r = rules(language)
    out += r.on_metrics(1, {"train/loss": 1.0, "train/grad_norm": INF}, 1.0)
    return out


def test_every_message_exists_in_english_and_chinese():
    en, zh = _every_message("en"), _every_message("zh")
    assert kinds(en) == kinds(zh) == ["loss_spike", "nonfinite", "stall", "resumed", "end", "end",
                                      "end", "end", "nonfinite"]
    for a, b in zip(en, zh):
        assert (a.step, a.level) == (b.step, b.level)
        assert re.search(r"[\u4e00-\u9fff]", b.title + b.text), b  # Chinese characters
        english_words = re.findall(r"\b(Training|Trainer logs|Last|Best|Run|step|after)\b",
                                   b.text.replace("Trainer 日志", ""))
        assert not english_words, (english_words, b.text)
    assert "实验：" + URL in zh[0].text and "第 21 步" in zh[0].text


def test_the_config_comes_from_the_settings():
    s = parse({"swanlab_project": "p", "swanlab_alert_loss_spike": False,
               "swanlab_alert_stall_minutes": 0.1, "swanlab_notify_language": "zh",
               "swanlab_alerts": False}, env={}).settings
    config = AlertConfig.from_settings(s)
    assert (config.alerts, config.loss_spike, config.stall_minutes, config.language) == \
        (False, None, 0.1, "zh")
    config = AlertConfig.from_settings(parse({"swanlab_project": "p"}, env={}).settings)
    assert (config.alerts, config.loss_spike, config.stall_minutes, config.language) == \
        (True, 3.0, 30.0, "en")


# -- property: no flood, whatever the sequence ----------------------------------------------------

_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.sampled_from([NAN, INF, -INF, 1.0, 100.0, 0.0]))
_events = st.lists(st.tuples(st.integers(0, 30), _values, _values, st.integers(0, 400),
                             st.booleans(), st.booleans()), max_size=80)


@hsettings(max_examples=150, deadline=None, database=None)
@given(events=_events, end=st.sampled_from(["finished", "crashed", "aborted", "killed"]))
def test_no_flood_and_one_end(events, end):
    r = rules(stall_minutes=1, quiet_steps=20)
    step, now, out = 0, 0.0, []
    for advance, loss, grad, wait, alive, tick in events:
        step, now = step + advance, now + wait
        out += r.on_tick(now, alive) if tick else \
            r.on_metrics(step, {"train/loss": loss, "train/grad_norm": grad}, now)
    out += r.on_end(end, now + 1)
    out += r.on_end("finished", now + 2)
    for kind in ("nonfinite", "loss_spike"):
        steps = [a.step for a in out if a.kind == kind]
        assert all(b - a >= 20 for a, b in zip(steps, steps[1:])), (kind, steps)
    stalls = [a.kind for a in out if a.kind in ("stall", "resumed")]
    assert all(x != y for x, y in zip(stalls, stalls[1:])), stalls  # stall, resumed, stall...
    assert kinds(out).count("end") == 1 and out[-1].kind == "end"
    assert all(a.title and a.text and "\n" not in a.line for a in out)
    assert all(not (isinstance(a.step, float) and math.isnan(a.step)) for a in out)
