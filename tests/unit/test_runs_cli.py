"""`swanlab-autopatch runs` and `swanlab-autopatch compare` on runs written by real SwanLab.

The runs are produced once per module by the real `swanlab` package (offline mode) in
subprocesses; the commands run in-process through cli.main, plus one real console run.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from swanlab_autopatch import cli
from swanlab_autopatch.runs import commands as runs_cli
from swanlab_autopatch.runs.reader import RunRecord, find_runs, read_run

REPO = Path(__file__).resolve().parents[2]
SECRET_A = "hf_CANARY_aaaa_1111"
SECRET_B = "hf_CANARY_bbbb_2222"

PRODUCER = textwrap.dedent(r'''
    import json, sys
    import swanlab

    with open(sys.argv[1], encoding="utf-8") as fp:
        spec = json.load(fp)
    for run in spec["runs"]:
        swanlab.init(project=run["project"], name=run["name"], mode="offline",
                     log_dir=spec["log_dir"], config=run["config"])
        steps = sorted({s for points in run["metrics"].values() for s, _ in points})
        for step in steps:
            swanlab.log({k: v for k, points in run["metrics"].items()
                         for s, v in points if s == step}, step=step)
        if run.get("crash"):
            raise RuntimeError("out of memory (pretend)")
        swanlab.finish()
''')


def loss_curve(n: int, start: float, floor: float) -> list[list]:
    return [[s, round(floor + (start - floor) * 0.8 ** s, 6)] for s in range(1, n + 1)]


RUN_A = {
    "project": "cli-proj", "name": "lr-2e-4",
    "config": {"base_model": "tiny-llama", "learning_rate": 0.0002,
               "lora": {"r": 8, "alpha": 16}, "micro_batch_size": 2, "hub_token": SECRET_A,
               "datasets": [{"path": "tatsu-lab/alpaca", "type": "alpaca"}]},
    "metrics": {"train/loss": loss_curve(30, 2.5, 0.9),
                "eval/loss": [[10, 1.4], [20, 1.2], [30, 1.25]],
                "eval/accuracy": [[10, 0.5], [20, 0.625], [30, 0.6]]},
}
RUN_B = {
    "project": "cli-proj", "name": "lr-1e-4",
    "config": {"base_model": "tiny-llama", "learning_rate": 0.0001,
               "lora": {"r": 16, "alpha": 16}, "micro_batch_size": 2, "hub_token": SECRET_B,
               "datasets": [{"path": "tatsu-lab/alpaca", "type": "alpaca"}],
               "warmup_steps": 5},
    "metrics": {"train/loss": loss_curve(24, 2.5, 1.1),
                "eval/loss": [[10, 1.5], [20, 1.3]],
                "eval/accuracy": [[10, 0.375], [20, 0.5]]},
}
# Logs plain `loss` (the fallback key) and crashes.
RUN_C = {"project": "cli-other", "name": "crashy", "config": {"learning_rate": 0.01},
         "metrics": {"loss": [[1, 3.0], [2, 2.5], [3, 2.75]]}, "crash": True}


def pts(points) -> list[tuple[int, float]]:
    return [(int(s), float(v)) for s, v in points]


def _produce(root: Path, log_dir: Path, runs: list[dict]):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWANLAB")}
    env.update({"SWANLAB_ROOT": str(root / "swanlab-root"), "SWANLAB_AUTOPATCH": "0",
                "SWANLAB_PROBE_REQUIREMENTS": "false", "SWANLAB_PROBE_HARDWARE": "false",
                "SWANLAB_PROBE_GIT": "false", "SWANLAB_PROBE_MONITOR": "false"})
    spec = root / f"spec-{len(runs)}-{runs[0]['name']}.json"
    spec.write_text(json.dumps({"log_dir": str(log_dir), "runs": runs}), encoding="utf-8")
    return subprocess.Popen([sys.executable, "-c", PRODUCER, str(spec)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> Path:
    """A log folder: two finished runs (A then B), one crashed run, and one broken folder."""
    root = tmp_path_factory.mktemp("cliruns")
    log_dir = root / "swanlog"
    finished = _produce(root, log_dir, [RUN_A, RUN_B])
    crashed = _produce(root, root / "crashlog", [RUN_C])
    for proc, rc in ((finished, 0), (crashed, 1)):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == rc, out
    for folder in (root / "crashlog").glob("run-*"):
        shutil.move(str(folder), log_dir / folder.name)
    broken = log_dir / "run-20000101_000000-brokenid"
    (broken / "files").mkdir(parents=True)
    (broken / "run-brokenid.swanlab").write_bytes(b"\x00garbage, not SwanLab\x00" * 4)
    return log_dir


@pytest.fixture(scope="module")
def ids(logdir) -> dict[str, str]:
    return {run.name: run.run_id for run in find_runs(logdir) if run.name}


def newest_first(logdir: Path, ids: dict[str, str]) -> list[str]:
    """The three good runs by their start time (newest first), then the broken one."""
    started = {name: read_run(next(logdir.glob(f"run-*-{run_id}"))).started_at
               for name, run_id in ids.items()}
    return [ids[n] for n in sorted(started, key=started.get, reverse=True)] + ["brokenid"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------
# runs


def test_runs_table(logdir, ids, capsys):
    code, out, err = run_cli(capsys, "runs", logdir)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "PROJECT", "EXPERIMENT", "STATE", "STEPS", "STARTED",
                                "DURATION", "LAST", "LOSS", "BEST", "LOSS"]
    rows = {line.split()[0]: line for line in lines[1:5]}
    # newest first: B was started after A (same process), the broken folder is dated 2000
    # (C was made in parallel: its place depends on timing, so it is checked by its time)
    order = [line.split()[0] for line in lines[1:5]]
    assert order == newest_first(logdir, ids) and order[-1] == "brokenid"
    assert order.index(ids["lr-1e-4"]) < order.index(ids["lr-2e-4"])
    a = rows[ids["lr-2e-4"]].split()
    assert a[1:5] == ["cli-proj", "lr-2e-4", "finished", "30"]
    last_a = RUN_A["metrics"]["train/loss"][-1][1]
    assert a[-3] == f"{last_a:.6g}"                     # last loss
    assert a[-2:] == [f"{last_a:.6g}", "@30"]           # best loss (decreasing curve)
    c = rows[ids["crashy"]].split()
    assert c[3] == "crashed"
    assert c[-3:] == ["2.75", "2.5", "@2"]              # `loss` fallback: last, best @step
    broken = rows["brokenid"]
    assert "unknown !" in broken
    assert "! damaged or incomplete" in out
    assert "brokenid: run-brokenid.swanlab is not a SwanLab data file" in out
    assert f"{ids['crashy']}: RuntimeError: out of memory (pretend)" in out


def test_runs_json(logdir, ids, capsys):
    code, out, _ = run_cli(capsys, "runs", logdir, "--json")
    assert code == 0
    data = json.loads(out)
    assert [r["id"] for r in data] == newest_first(logdir, ids)
    by_name = {r["name"]: r for r in data}
    b = by_name["lr-1e-4"]
    assert (b["project"], b["name"], b["state"], b["steps"]) == ("cli-proj", "lr-1e-4",
                                                                 "finished", 24)
    assert b["loss_key"] == "train/loss"
    assert b["last_loss"] == {"step": 24, "value": RUN_B["metrics"]["train/loss"][-1][1]}
    assert b["best_loss"] == {"step": 24, "value": RUN_B["metrics"]["train/loss"][-1][1]}
    assert b["metrics"] == ["eval/accuracy", "eval/loss", "train/loss"]
    assert b["problems"] == [] and b["duration"] >= 0
    c = by_name["crashy"]
    assert c["state"] == "crashed" and "out of memory" in c["error"]
    assert c["loss_key"] == "loss"
    assert c["best_loss"] == {"step": 2, "value": 2.5}
    assert c["last_loss"] == {"step": 3, "value": 2.75}
    assert data[3]["id"] == "brokenid"
    assert data[3]["state"] == "unknown" and data[3]["problems"]


def test_runs_default_log_dir(logdir, ids, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SWANLAB_LOG_DIR", str(logdir))
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert code == 0 and len(json.loads(out)) == 4
    monkeypatch.delenv("SWANLAB_LOG_DIR")
    monkeypatch.delenv("SWANLAB_LOGDIR", raising=False)
    monkeypatch.chdir(tmp_path)
    src = next(logdir.glob(f"run-*-{ids['lr-2e-4']}"))
    shutil.copytree(src, tmp_path / "swanlog" / src.name)
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert code == 0
    assert [r["name"] for r in json.loads(out)] == ["lr-2e-4"]


def test_runs_nothing_to_read(tmp_path, capsys):
    code, _, err = run_cli(capsys, "runs", tmp_path / "nope")
    assert code == 1 and "no such folder" in err
    code, out, _ = run_cli(capsys, "runs", tmp_path)
    assert code == 1 and "No SwanLab runs" in out
    broken = tmp_path / "run-20240101_000000-onlybroken"
    broken.mkdir()
    (broken / "run-onlybroken.swanlab").write_bytes(b"nope")
    code, out, _ = run_cli(capsys, "runs", tmp_path)
    assert code == 1 and "onlybroken" in out and "not a SwanLab data file" in out


def test_usage_errors_exit_2(logdir, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["runs", str(logdir), "extra"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["compare"])
    assert info.value.code == 2
    capsys.readouterr()


def test_console_script_runs(logdir, ids):
    """The real entry point in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWANLAB")}
    env["PYTHONPATH"] = str(REPO)
    env["SWANLAB_AUTOPATCH"] = "0"
    proc = subprocess.run([sys.executable, "-m", "swanlab_autopatch", "runs", str(logdir)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ids["lr-2e-4"] in proc.stdout and "crashed" in proc.stdout


# ---------------------------------------------------------------------------------------------
# compare


GOALS = {"lower is better": "min", "higher is better": "max", "no better direction": None}


def metric_rows(out: str) -> dict[str, dict]:
    """{metric: {"goal": ..., "winner": "[i]" or None, "[1]": [last, @step, best, @step], ...}}
    from compare's text output."""
    table: dict[str, dict] = {}
    current = None
    for line in out.split("\nMetrics")[1].splitlines()[1:]:
        if line.startswith("  ") and not line.startswith("   "):
            current, _, direction = line.strip().rpartition(" (")
            table[current] = {"goal": GOALS[direction.rstrip(")")], "winner": None}
        elif line.strip().startswith("["):
            cells = line.split()
            if cells[-1] == "best":
                table[current]["winner"] = cells[0]
                cells = cells[:-1]
            table[current][cells[0]] = cells[1:]
    return table


def test_compare_by_id_text(logdir, ids, capsys):
    code, out, err = run_cli(capsys, "compare", ids["lr-2e-4"], ids["lr-1e-4"],
                             "--log-dir", logdir)
    assert code == 0, err
    assert f"[1]  lr-2e-4 ({ids['lr-2e-4']})" in out
    assert f"[2]  lr-1e-4 ({ids['lr-1e-4']})" in out
    assert SECRET_A not in out and SECRET_B not in out
    section = out.split("Config: ")[1].split("\nMetrics")[0]
    assert section.startswith("3 differ, 5 the same (secrets masked)\n")
    rows = {line.split()[0]: line.split()[1:] for line in section.strip().splitlines()[2:]}
    # hub_token differs in the files, but both show as *** (equal once masked)
    assert rows == {"learning_rate": ["0.0002", "0.0001"], "lora.r": ["8", "16"],
                    "warmup_steps": ["-", "5"]}
    # The default metrics only (eval/accuracy is counted, shown with --all or --metric).
    assert "\nMetrics (1 more logged: --all shows them, --metric NAME picks one)\n" in out
    table = metric_rows(out)
    assert list(table) == ["train/loss", "eval/loss"]
    assert table["eval/loss"] == {"goal": "min", "winner": "[1]",
                                  "[1]": ["1.25", "30", "1.2", "20"],
                                  "[2]": ["1.3", "20", "1.3", "20"]}
    last_b = RUN_B["metrics"]["train/loss"][-1][1]
    assert table["train/loss"]["[2]"] == [f"{last_b:.6g}", "24", f"{last_b:.6g}", "24"]
    assert table["train/loss"]["winner"] == "[1]"  # RUN_A's floor is lower

    code, out, err = run_cli(capsys, "compare", ids["lr-2e-4"], ids["lr-1e-4"],
                             "--log-dir", logdir, "--all")
    assert code == 0, err
    table = metric_rows(out)
    assert list(table) == ["eval/accuracy", "eval/loss", "train/loss"]
    assert "\nMetrics\n" in out
    assert table["eval/accuracy"] == {"goal": "max", "winner": "[1]",
                                      "[1]": ["0.6", "30", "0.625", "20"],
                                      "[2]": ["0.5", "20", "0.5", "20"]}


def test_compare_marks_runs_without_a_metric(logdir, ids, capsys):
    code, out, _ = run_cli(capsys, "compare", ids["lr-2e-4"], ids["crashy"],
                           "--log-dir", logdir, "--metric", "loss", "train/loss")
    assert code == 0
    table = metric_rows(out)
    assert table["loss"]["[1]"] == ["not", "logged"]
    assert table["loss"]["[2]"] == ["2.75", "3", "2.5", "2"]
    assert table["train/loss"]["[2]"] == ["not", "logged"]
    assert "crashed" in out.split("Config")[0]


def test_compare_secret_values_are_masked_even_when_they_differ(logdir, ids, capsys):
    code, out, _ = run_cli(capsys, "compare", ids["lr-2e-4"], ids["lr-1e-4"],
                           "--log-dir", logdir, "--json")
    assert code == 0
    assert SECRET_A not in out and SECRET_B not in out
    data = json.loads(out)
    # both tokens are masked to the same "***", so they do not count as a difference
    assert "hub_token" not in data["config_differences"]
    assert data["config_differences"] == {"learning_rate": [0.0002, 0.0001],
                                          "lora.r": [8, 16], "warmup_steps": [None, 5]}
    assert data["config_same"] == 5
    assert data["config_copies"]["lora.r"] == ["lora.r"]
    assert list(data["metrics"]) == ["train/loss", "eval/loss"]
    assert data["other_metrics"] == ["eval/accuracy"]


def test_compare_json_metrics_exact(logdir, ids, capsys):
    folder_a = read_run(next(logdir.glob(f"run-*-{ids['lr-2e-4']}"))).path
    code, out, _ = run_cli(capsys, "compare", folder_a, ids["lr-1e-4"][:5], "--log-dir", logdir,
                           "--metric", "train/loss", "eval/accuracy", "--json")
    assert code == 0
    data = json.loads(out)
    assert [r["name"] for r in data["runs"]] == ["lr-2e-4", "lr-1e-4"]
    assert list(data["metrics"]) == ["train/loss", "eval/accuracy"]
    loss = data["metrics"]["train/loss"]
    assert loss["goal"] == "min"
    a_loss, b_loss = pts(RUN_A["metrics"]["train/loss"]), pts(RUN_B["metrics"]["train/loss"])
    assert loss["runs"][0]["last"] == {"step": a_loss[-1][0], "value": a_loss[-1][1]}
    assert loss["runs"][1]["best"] == {"step": 24, "value": min(v for _, v in b_loss)}
    assert loss["runs"][0]["points"] == 30 and loss["runs"][1]["points"] == 24
    acc = data["metrics"]["eval/accuracy"]
    assert acc["goal"] == "max"
    assert acc["runs"][0]["best"] == {"step": 20, "value": 0.625}
    assert data["plot"] is None


def test_compare_unknown_run_exits_1(logdir, capsys):
    code, _, err = run_cli(capsys, "compare", "no-such-id", "--log-dir", logdir)
    assert code == 1 and "no run 'no-such-id'" in err


def test_compare_plot_png(logdir, ids, capsys, tmp_path):
    png = tmp_path / "cmp.png"
    code, out, err = run_cli(capsys, "compare", ids["lr-2e-4"], ids["lr-1e-4"],
                             "--log-dir", logdir, "--plot", png)
    assert code == 0, err
    assert f"Plot written to {png}" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 200
    crc = struct.unpack(">I", data[29:33])[0]
    assert crc == zlib.crc32(data[12:29])
    assert data.endswith(b"IEND\xaeB`\x82")


def test_plot_figure_lines_carry_the_logged_data(logdir, ids):
    runs = [read_run(next(logdir.glob(f"run-*-{ids[name]}"))) for name in ("lr-2e-4", "lr-1e-4")]
    fig = runs_cli.plot_figure(runs, ["train/loss", "eval/loss"])
    assert len(fig.axes) == 2
    loss_ax, eval_ax = fig.axes
    assert loss_ax.get_xlabel() == "step" and loss_ax.get_ylabel() == "train/loss"
    assert loss_ax.get_title() == "train/loss"
    assert fig.get_suptitle()
    lines = loss_ax.get_lines()
    assert len(lines) == 2
    for line, spec in zip(lines, (RUN_A, RUN_B)):
        expected = pts(spec["metrics"]["train/loss"])
        assert list(line.get_xdata()) == [s for s, _ in expected]
        assert list(line.get_ydata()) == [v for _, v in expected]
        assert spec["name"] in line.get_label()
    legend = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert legend == [f"lr-2e-4 ({ids['lr-2e-4']})", f"lr-1e-4 ({ids['lr-1e-4']})"]
    assert [list(line.get_ydata()) for line in eval_ax.get_lines()] == \
        [[1.4, 1.2, 1.25], [1.5, 1.3]]


def test_plot_labels_unfinished_runs(logdir, ids):
    runs = [read_run(next(logdir.glob(f"run-*-{ids[name]}"))) for name in ("lr-2e-4", "crashy")]
    fig = runs_cli.plot_figure(runs, ["loss"])
    (line,) = fig.axes[0].get_lines()  # only the crashed run logged `loss`
    assert line.get_label() == f"crashy ({ids['crashy']}) [crashed]"
    assert list(zip(line.get_xdata(), line.get_ydata())) == pts(RUN_C["metrics"]["loss"])


def test_plot_draws_the_metrics_shown_and_skips_runs_without_one(logdir, ids, tmp_path, capsys,
                                                                 monkeypatch):
    seen = {}
    original = runs_cli.plot_figure

    def spy(runs, metrics, *args, **kwargs):
        fig = original(runs, metrics, *args, **kwargs)
        seen["metrics"] = list(metrics)
        seen["lines"] = [len(ax.get_lines()) for ax in fig.axes]
        return fig

    monkeypatch.setattr(runs_cli, "plot_figure", spy)
    code, _, err = run_cli(capsys, "compare", ids["lr-2e-4"], ids["crashy"],
                           "--log-dir", logdir, "--plot", tmp_path / "p.png")
    assert code == 0, err
    # crashy logged `loss` only, lr-2e-4 `train/loss` and `eval/loss`
    assert seen == {"metrics": ["train/loss", "loss", "eval/loss"], "lines": [1, 1, 1]}


def test_plot_without_matplotlib(logdir, ids, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "never.png"
    code, out, err = run_cli(capsys, "compare", ids["lr-2e-4"], "--log-dir", logdir,
                             "--plot", png)
    assert code == 1
    assert "pip install 'swanlab-autopatch[plot]'" in err
    assert len(err.strip().splitlines()) == 1
    assert not png.exists()


def test_plot_unknown_image_type_is_a_usage_error(logdir, ids, tmp_path, capsys):
    code, _, err = run_cli(capsys, "compare", ids["lr-2e-4"], "--log-dir", logdir,
                           "--plot", tmp_path / "x.notanimage")
    assert code == 2 and "unknown image type" in err


# ---------------------------------------------------------------------------------------------
# compare on runs shaped like this package's (the run config of tracking/run_config.py)


def package_run(name: str, lr: float, *, warmup_in_trainer: int = 0, tokens=None) -> RunRecord:
    config = {
        "base_model": "tiny", "method": "sft", "learning_rate": lr, "micro_batch_size": 2,
        "framework": "axolotl",
        "model": {"base_model": "/models/tiny", "lora_r": 8},
        "training": {"learning_rate": lr, "micro_batch_size": 2, "seed": 42},
        "axolotl": {"base_model": "/models/tiny", "learning_rate": lr, "micro_batch_size": 2,
                    "lora_r": 8, "seed": 42, "warmup_steps": 0, "output_dir": "./out"},
        "trainer_args": {"learning_rate": lr, "seed": 42, "output_dir": "./out",
                         "warmup_steps": warmup_in_trainer},
    }
    scalars = {"train/loss": [(1, 2.0), (2, 1.5 + lr)], "eval/loss": [(2, 1.8 + lr)],
               "train/learning_rate": [(1, lr), (2, lr / 2)], "train/epoch": [(1, 0.5), (2, 1.0)],
               "train/tokens/train_per_sec_per_gpu": [(2, tokens or 100.0)]}
    return RunRecord(path=Path(f"swanlog/run-20260101_000000-{name}"), run_id=name, name=name,
                     project="p", state="finished", config=config, scalars=scalars)


def test_each_config_value_once_with_its_copies_folded():
    runs = [package_run("a", 0.001), package_run("b", 0.002)]
    rows = runs_cli.config_rows(runs)
    by_key = {row.key: row for row in rows}
    assert [row.key for row in rows if row.differs] == ["learning_rate"]
    assert by_key["learning_rate"].copies == ["learning_rate", "training.learning_rate",
                                              "axolotl.learning_rate",
                                              "trainer_args.learning_rate"]
    assert by_key["learning_rate"].values == [0.001, 0.002]
    # Copies that disagree inside a run keep their own rows: the short name at the top, the
    # path in Axolotl's config.
    assert by_key["base_model"].copies == ["base_model"]
    assert by_key["model.base_model"].copies == ["model.base_model", "axolotl.base_model"]
    assert len(rows) == len(by_key)  # every name once
    assert by_key["output_dir"].copies == ["axolotl.output_dir", "trainer_args.output_dir"]

    # A copy that disagrees in one run only splits from the others, and shows as what differs.
    runs = [package_run("a", 0.001), package_run("b", 0.001, warmup_in_trainer=5)]
    differ = [row for row in runs_cli.config_rows(runs) if row.differs]
    assert [(row.key, row.values) for row in differ] == [("trainer_args.warmup_steps", [0, 5])]


def test_compare_text_of_two_runs_differing_in_learning_rate_only():
    runs = [package_run("a", 0.001, tokens=90.0), package_run("b", 0.002, tokens=120.0)]
    metrics = runs_cli.chosen_metrics(runs, None, False)
    others = [k for k in runs_cli.logged_metrics(runs) if k not in metrics]
    rows = runs_cli.config_rows(runs)
    text = runs_cli.format_compare(runs, ["a", "b"], metrics, others, rows)
    config = text.split("\n\n")[1]
    same = len(rows) - 1
    assert config == ("Config: 1 differs, %d the same (secrets masked)\n"
                      "  KEY            [1]    [2]\n"
                      "  learning_rate  0.001  0.002" % same)
    table = metric_rows(text)
    assert list(table) == ["train/loss", "eval/loss", "train/learning_rate"]
    assert table["train/learning_rate"] == {"goal": None, "winner": None, "[1]": ["0.0005", "2"],
                                            "[2]": ["0.001", "2"]}
    assert table["train/loss"]["winner"] == "[1]"
    assert "Metrics (2 more logged: --all shows them, --metric NAME picks one)" in text

    every = runs_cli.chosen_metrics(runs, None, True)
    table = metric_rows(runs_cli.format_compare(runs, ["a", "b"], every, [], rows))
    assert table["train/tokens/train_per_sec_per_gpu"]["goal"] == "max"
    assert table["train/tokens/train_per_sec_per_gpu"]["winner"] == "[2]"
    assert table["train/epoch"]["goal"] is None


def test_compare_json_has_no_best_without_a_direction():
    runs = [package_run("a", 0.001), package_run("b", 0.002)]
    data = runs_cli.compare_json(runs, ["a", "b"], ["train/learning_rate", "train/loss"], [],
                                 runs_cli.config_rows(runs), None)
    assert data["metrics"]["train/learning_rate"]["goal"] is None
    assert data["metrics"]["train/learning_rate"]["runs"][0]["best"] is None
    assert data["metrics"]["train/loss"]["runs"][1]["best"] == {"step": 2, "value": 1.502}
    assert data["config_differences"] == {"learning_rate": [0.001, 0.002]}
    assert data["config_copies"]["learning_rate"][-1] == "trainer_args.learning_rate"
