"""`swanlab-autopatch runs` and `swanlab-autopatch compare`: look at SwanLab runs on disk.

Both work on the run folders SwanLab writes in offline and local mode (see reader.py), with
no dashboard, account or network.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from swanlab_autopatch.runs.reader import (DecoderUnavailable, RunReadError, RunRecord, find_runs,
                                           goal, read_run)
from swanlab_autopatch.paths import default_log_dir
from swanlab_autopatch.redact import redact

LOSS_KEYS = ("train/loss", "loss")
PLOT_INSTALL_HINT = "pip install 'swanlab-autopatch[plot]'"
MISSING = "-"


# -- small formatting helpers ------------------------------------------------------------


def _num(value: Optional[float]) -> str:
    if value is None:
        return MISSING
    return f"{value:.6g}"


def _when(when: Optional[datetime]) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else MISSING


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _json_num(value: Optional[float]) -> Optional[float]:
    return value if value is not None and math.isfinite(value) else None


def _json_point(point: Optional[tuple[int, float]]) -> Optional[dict]:
    if point is None:
        return None
    return {"step": point[0], "value": _json_num(point[1])}


def _iso(when: Optional[datetime]) -> Optional[str]:
    return when.isoformat() if when else None


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "") -> str:
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append(indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _short(text: str, width: int = 40) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def loss_key(run: RunRecord) -> Optional[str]:
    """The loss a run is summarised by: train/loss, else loss (None if it logged neither)."""
    return next((k for k in LOSS_KEYS if run.scalars.get(k)), None)


def _error(message: str) -> None:
    print(f"swanlab-autopatch: error: {message}", file=sys.stderr)


# -- runs ---------------------------------------------------------------------------------


def run_summary(run: RunRecord) -> dict[str, Any]:
    key = loss_key(run)
    return {
        "id": run.run_id,
        "project": run.project,
        "name": run.name,
        "description": run.description,
        "state": run.state,
        "steps": run.steps,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration": run.duration,
        "loss_key": key,
        "last_loss": _json_point(run.last(key)) if key else None,
        "best_loss": _json_point(run.best(key)) if key else None,
        "metrics": sorted(run.scalars),
        "error": run.error,
        "problems": list(run.problems),
        "path": str(run.path),
    }


def cmd_runs(args: argparse.Namespace) -> int:
    log_dir = args.log_dir or default_log_dir()
    try:
        runs = find_runs(log_dir)
    except RunReadError as exc:
        _error(f"{exc} (give the SwanLab log folder, or set SWANLAB_LOG_DIR)")
        return 1
    except DecoderUnavailable as exc:
        _error(str(exc))
        return 1
    if args.json:
        print(json.dumps([run_summary(r) for r in runs], indent=2))
    elif not runs:
        print(f"No SwanLab runs under {log_dir}")
    else:
        print(format_runs_table(runs))
    readable = [r for r in runs if r.records or r.config]
    return 0 if readable else 1


def format_runs_table(runs: Sequence[RunRecord]) -> str:
    headers = ["ID", "PROJECT", "EXPERIMENT", "STATE", "STEPS", "STARTED", "DURATION",
               "LAST LOSS", "BEST LOSS"]
    rows = []
    for run in runs:
        key = loss_key(run)
        last = run.last(key) if key else None
        best = run.best(key) if key else None
        state = run.state + (" !" if run.problems else "")
        rows.append([
            run.run_id or run.path.name, run.project or MISSING, run.name or MISSING, state,
            str(run.steps) if run.records else MISSING, _when(run.started_at),
            _duration(run.duration), _num(last[1]) if last else MISSING,
            f"{_num(best[1])} @{best[0]}" if best else MISSING,
        ])
    out = [_table(headers, rows)]
    damaged = [r for r in runs if r.problems]
    if damaged:
        out.append("")
        out.append("! damaged or incomplete (shown: what could be read):")
        for run in damaged:
            for problem in run.problems:
                out.append(f"  {run.run_id or run.path.name}: {problem}")
    if any(r.state == "crashed" and r.error for r in runs):
        out.append("")
        out.append("Crashed:")
        for run in runs:
            if run.state == "crashed" and run.error:
                lines = [ln for ln in run.error.strip().splitlines() if ln.strip()]
                out.append(f"  {run.run_id or run.path.name}: {lines[-1].strip() if lines else ''}")
    return "\n".join(out)


# -- compare -------------------------------------------------------------------------------


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    if isinstance(config, dict) and config:
        for key, value in config.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten(value, name))
    elif prefix:
        out[prefix] = config
    return out


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


class _AbsentType:
    """A config key a run does not have."""

    def __repr__(self) -> str:
        return "<absent>"


_Absent = _AbsentType()

# The run config repeats values (tracking/run_config.py): the hyperparameter columns at the top
# level, then groups that copy keys of Axolotl's config and of the Trainer's arguments. A value
# is compared and shown once, under its own name.
FOLDED_GROUPS = ("training", "model", "parallel", "axolotl", "trainer_args")


@dataclass
class ConfigRow:
    """One config value across runs, standing for every copy of it in the run config."""

    key: str  # the name shown: the key itself, or the dotted key where copies disagree
    values: list[Any]  # per run: the value (redacted), or _Absent
    copies: list[str]  # the dotted keys of the run config folded into this row

    @property
    def differs(self) -> bool:
        return len({_fingerprint(v) for v in self.values}) > 1


def _fingerprint(value: Any) -> str:
    if value is _Absent:
        return "\0absent"
    return json.dumps(value, default=str, sort_keys=True)


def _base(dotted: str) -> str:
    """`axolotl.learning_rate` -> `learning_rate`; keys outside the folded groups as they are."""
    head, _, rest = dotted.partition(".")
    return rest if rest and head in FOLDED_GROUPS else dotted


def _first(flat: dict[str, Any], copies: list[str]) -> Any:
    return next((flat[c] for c in copies if c in flat), _Absent)


def config_rows(runs: Sequence[RunRecord]) -> list[ConfigRow]:
    """Every config value of the runs once, in the run config's order (the hyperparameter
    columns first). Copies of a key are folded into one row when they agree within every run;
    copies that do not (the top-level `base_model` is a short name, Axolotl's a path) keep
    their own rows. Values are redacted (redact.redact) before they are compared or shown."""
    flat = [flatten(redact(run.config)) for run in runs]
    by_base: dict[str, list[str]] = {}
    for f in flat:
        for key in f:
            copies = by_base.setdefault(_base(key), [])
            if key not in copies:
                copies.append(key)
    rows = []
    for base, copies in by_base.items():
        classes: list[list[str]] = []
        for copy in copies:
            for members in classes:
                if all(copy not in f or _first(f, members) is _Absent
                       or _fingerprint(f[copy]) == _fingerprint(_first(f, members))
                       for f in flat):
                    members.append(copy)
                    break
            else:
                classes.append([copy])
        for members in classes:
            name = base if len(classes) == 1 or members[0] == base else members[0]
            rows.append(ConfigRow(name, [_first(f, members) for f in flat], members))
    return rows


def _labels(runs: Sequence[RunRecord]) -> list[str]:
    names = [r.name or r.run_id or r.path.name for r in runs]
    if len(set(names)) == len(names):
        return [f"{n} ({r.run_id})" if r.run_id and r.name else n for n, r in zip(names, runs)]
    return [r.label() if names.count(n) == 1 else f"{r.label()} [{r.path.name}]"
            for n, r in zip(names, runs)]


def resolve_run(spec: str, log_dir: str) -> RunRecord:
    """A run folder path, a run-<id>.swanlab file, or a run id (or unique id prefix) under
    log_dir. RunReadError with a message naming what was tried."""
    path = Path(spec)
    if path.exists():
        return read_run(path)
    root = Path(log_dir)
    if not root.is_dir():
        raise RunReadError(f"{spec!r} is not a path, and the log folder {log_dir} to look "
                           "it up in does not exist (use --log-dir)")
    folders = [c for c in sorted(root.iterdir()) if c.is_dir()]
    exact, prefix = [], []
    for folder in folders:
        ids = {c.name[len("run-"):-len(".swanlab")] for c in folder.glob("run-*.swanlab")}
        if folder.name.startswith("run-"):
            ids.add(folder.name.split("-", 2)[-1])
        if spec in ids:
            exact.append(folder)
        elif any(i.startswith(spec) for i in ids):
            prefix.append(folder)
    matches = exact or prefix
    if len(matches) == 1:
        return read_run(matches[0])
    if not matches:
        raise RunReadError(f"no run {spec!r} under {log_dir} (give a run folder, or an id "
                           "from `swanlab-autopatch runs`)")
    raise RunReadError(f"{spec!r} matches several runs under {log_dir}: "
                       + ", ".join(m.name for m in matches))


# What `compare` shows without --metric or --all: loss, eval loss and learning rate (each name
# any run logged, in this order).
DEFAULT_METRICS = ("train/loss", "loss", "eval/loss", "eval_loss", "train/learning_rate",
                   "learning_rate")


def logged_metrics(runs: Sequence[RunRecord]) -> list[str]:
    keys: list[str] = []
    for run in runs:
        keys.extend(k for k in run.scalars if k not in keys)
    return sorted(keys)


def chosen_metrics(runs: Sequence[RunRecord], requested: Optional[list[str]],
                   every: bool) -> list[str]:
    """--metric names as given, every logged metric with --all, else the default ones."""
    if requested:
        return list(dict.fromkeys(requested))
    logged = logged_metrics(runs)
    if every:
        return logged
    return [key for key in DEFAULT_METRICS if key in logged]


def _import_matplotlib():
    """(Figure, FigureCanvasAgg, MaxNLocator), or ImportError."""
    import matplotlib  # noqa: F401  (first: a missing package fails here)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    return Figure, FigureCanvasAgg, MaxNLocator


def plot_figure(runs: Sequence[RunRecord], metrics: Sequence[str],
                labels: Optional[Sequence[str]] = None, title: Optional[str] = None):
    """A matplotlib Figure (Agg canvas, no pyplot state): one axes per metric, one line per
    run that logged it, x = step, y = value. Raises ImportError without matplotlib."""
    Figure, FigureCanvasAgg, MaxNLocator = _import_matplotlib()
    labels = list(labels) if labels else _labels(runs)
    labels = [label if run.state == "finished" and not run.problems
              else f"{label} [{run.state}{' !' if run.problems else ''}]"
              for run, label in zip(runs, labels)]
    fig = Figure(figsize=(7.2, 3.0 * len(metrics) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, key in zip(axes, metrics):
        for run, label in zip(runs, labels):
            points = run.series(key)
            if not points:
                continue
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label,
                    marker="o" if len(points) <= 30 else None, markersize=3, linewidth=1.5)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, f"no run logged {key}", ha="center", va="center",
                    transform=ax.transAxes)
    count = f"{len(runs)} SwanLab run{'s' if len(runs) != 1 else ''}"
    fig.suptitle(title or f"{count}: " + ", ".join(metrics))
    return fig


def save_figure(fig, path: Path) -> None:
    fig.savefig(path, dpi=100)


def cmd_compare(args: argparse.Namespace) -> int:
    log_dir = args.log_dir or default_log_dir()
    runs: list[RunRecord] = []
    try:
        for spec in args.runs:
            try:
                runs.append(resolve_run(spec, log_dir))
            except RunReadError as exc:
                _error(str(exc))
                return 1
    except DecoderUnavailable as exc:
        _error(str(exc))
        return 1

    labels = _labels(runs)
    metrics = chosen_metrics(runs, args.metric, args.all)
    others = [k for k in logged_metrics(runs) if k not in metrics]
    rows = config_rows(runs)

    plot_path: Optional[Path] = None
    fig = None
    if args.plot:
        plot_path = Path(args.plot)
        try:
            fig = plot_figure(runs, metrics or [LOSS_KEYS[0]], labels)
        except ImportError:
            _error(f"--plot needs matplotlib: {PLOT_INSTALL_HINT}")
            return 1
        supported = fig.canvas.get_supported_filetypes()
        if plot_path.suffix.lower().lstrip(".") not in supported:
            _error(f"--plot {plot_path}: unknown image type (use .png)")
            return 2
        try:
            save_figure(fig, plot_path)
        except OSError as exc:
            _error(f"cannot write {plot_path}: {exc.strerror or exc}")
            return 1

    if args.json:
        print(json.dumps(compare_json(runs, labels, metrics, others, rows, plot_path), indent=2,
                         default=str))
    else:
        print(format_compare(runs, labels, metrics, others, rows, chosen=bool(args.metric)))
        if plot_path is not None:
            print(f"\nPlot written to {plot_path}")
    return 0 if any(r.records or r.config for r in runs) else 1


def _json_value(value: Any) -> Any:
    return None if value is _Absent else value


def compare_json(runs, labels, metrics, others, rows, plot_path) -> dict[str, Any]:
    differ = [row for row in rows if row.differs]
    return {
        "runs": [dict(run_summary(r), label=label) for r, label in zip(runs, labels)],
        "config_differences": {row.key: [_json_value(v) for v in row.values] for row in differ},
        "config_copies": {row.key: row.copies for row in differ},
        "config_same": len(rows) - len(differ),
        "metrics": {
            key: {
                "goal": goal(key),
                "runs": [{"label": label, "last": _json_point(r.last(key)),
                          "best": _json_point(r.best(key)) if goal(key) else None,
                          "points": len(r.series(key))}
                         for r, label in zip(runs, labels)],
            } for key in metrics},
        "other_metrics": others,
        "plot": str(plot_path) if plot_path else None,
    }


def _config_section(runs: Sequence[RunRecord], rows: list[ConfigRow]) -> list[str]:
    if len(runs) < 2:
        return ["Config: only one run given, nothing to compare."]
    differ = [row for row in rows if row.differs]
    same = len(rows) - len(differ)
    if not differ:
        return [f"Config: all {same} values are the same (secrets masked)."]
    out = [f"Config: {len(differ)} differ{'s' if len(differ) == 1 else ''}, {same} the same "
           "(secrets masked)"]
    table = [[row.key] + [MISSING if v is _Absent else _short(_show(v)) for v in row.values]
             for row in differ]
    out.append(_table(["KEY"] + [f"[{i}]" for i in range(1, len(runs) + 1)], table, "  "))
    return out


_DIRECTION = {"min": "lower is better", "max": "higher is better", None: "no better direction"}


def _winner(runs: Sequence[RunRecord], key: str, direction: Optional[str]) -> Optional[int]:
    """The index of the one run with the best value of a metric (None on a tie, for fewer
    than two runs that logged it, or for a metric with no better direction)."""
    if direction is None:
        return None
    bests = [(i, run.best(key)) for i, run in enumerate(runs)]
    bests = [(i, b[1]) for i, b in bests if b is not None and not math.isnan(b[1])]
    if len(bests) < 2:
        return None
    top = (max if direction == "max" else min)(v for _, v in bests)
    holders = [i for i, v in bests if v == top]
    return holders[0] if len(holders) == 1 else None


def _metrics_section(runs, metrics, others, chosen: bool) -> list[str]:
    if not metrics:
        if others:
            return [f"Metrics: none of loss, eval loss or learning rate was logged; "
                    f"{len(others)} others were (--all shows them, --metric NAME picks one)."]
        return ["Metrics: no run logged any metric."]
    if chosen:
        head = "Metrics"
    elif others:
        head = f"Metrics ({len(others)} more logged: --all shows them, --metric NAME picks one)"
    else:
        head = "Metrics"
    out = [head]
    for key in metrics:
        direction = goal(key)
        out.append(f"  {key} ({_DIRECTION[direction]})")
        winner = _winner(runs, key, direction)
        rows = []
        for i, run in enumerate(runs):
            last, best = run.last(key), run.best(key)
            if last is None:
                rows.append([f"[{i + 1}]", "not logged"])
                continue
            row = [f"[{i + 1}]", _num(last[1]), str(last[0])]
            if direction is not None:
                row += [_num(best[1]) if best else MISSING, str(best[0]) if best else MISSING]
                row.append("best" if i == winner else "")
            rows.append(row)
        headers = ["", "LAST", "@STEP"] + (["BEST", "@STEP", ""] if direction else [])
        width = len(headers)
        out.append(_table(headers, [r + [""] * (width - len(r)) for r in rows], "    "))
    return out


def format_compare(runs, labels, metrics, others, rows, chosen: bool = False) -> str:
    out = ["Runs"]
    table = []
    for i, (run, label) in enumerate(zip(runs, labels), 1):
        table.append([f"[{i}]", label, run.project or MISSING,
                      run.state + (" !" if run.problems else ""), str(run.steps), str(run.path)])
    out.append(_table(["", "RUN", "PROJECT", "STATE", "STEPS", "FOLDER"], table, "  "))
    for i, run in enumerate(runs, 1):
        for problem in run.problems:
            out.append(f"  ! [{i}] {problem}")
    out.append("")
    out.extend(_config_section(runs, rows))
    out.append("")
    out.extend(_metrics_section(runs, metrics, others, chosen))
    return "\n".join(out)


# -- argparse ------------------------------------------------------------------------------


def add_commands(subparsers) -> None:
    runs = subparsers.add_parser(
        "runs", help="list the SwanLab runs in a log folder (offline/local runs, no dashboard)",
        description="List the SwanLab runs under LOGDIR, newest first: id, project, "
                    "experiment, state, steps, start, duration, last and best loss.")
    runs.add_argument("log_dir", nargs="?", metavar="LOGDIR",
                      help="the SwanLab log folder (default: $SWANLAB_LOG_DIR or ./swanlog)")
    runs.add_argument("--json", action="store_true", help="print a JSON list instead")
    runs.set_defaults(func=cmd_runs)

    compare = subparsers.add_parser(
        "compare", help="compare runs: config differences, last/best metrics, optional plot",
        description="Compare SwanLab runs read from disk: the config values that differ (each "
                    "once) and, for the loss, eval loss and learning rate, the last value and "
                    "the best value with its step.")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="a run folder, or a run id (or id prefix) in the log folder")
    compare.add_argument("--log-dir", metavar="DIR",
                         help="where to look up run ids (default: $SWANLAB_LOG_DIR or ./swanlog)")
    compare.add_argument("--metric", action="extend", nargs="+", metavar="KEY",
                         help="metrics to show and plot (default: loss, eval loss and "
                              "learning rate)")
    compare.add_argument("--all", action="store_true",
                         help="show and plot every metric the runs logged")
    compare.add_argument("--plot", metavar="FILE.png",
                         help="also draw the metrics over steps into this PNG (needs matplotlib)")
    compare.add_argument("--json", action="store_true", help="print JSON instead")
    compare.set_defaults(func=cmd_compare)
