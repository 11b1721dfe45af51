"""Shared pieces of the benchmarks: statistics, interleaving, the figures and the report.

Stdlib only: the child programs import this module too, in whatever environment they run.
"""
from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

# -- statistics -------------------------------------------------------------------------------


def median(xs: Sequence[float]) -> float:
    return percentile(xs, 50)


def percentile(xs: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Summary:
    median: float
    lo: float
    hi: float
    n: int
    kind: str  # "p10-p90" or "range" (fewer than 10 samples)


def summarize(xs: Sequence[float]) -> Summary:
    xs = list(xs)
    if len(xs) >= 10:
        return Summary(median(xs), percentile(xs, 10), percentile(xs, 90), len(xs), "p10-p90")
    if not xs:
        return Summary(float("nan"), float("nan"), float("nan"), 0, "range")
    return Summary(median(xs), min(xs), max(xs), len(xs), "range")


def diff_ci(a: Sequence[float], b: Sequence[float], level: float = 90.0,
            iters: int = 2000, seed: int = 7) -> tuple[float, float]:
    """Bootstrap confidence interval of median(a) - median(b)."""
    a, b = list(a), list(b)
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    if len(a) + len(b) > 600:  # large samples: fewer resamples are enough, and much faster
        iters = min(iters, 600)
    rng = random.Random(seed)
    diffs = []
    for _ in range(iters):
        ra = [a[rng.randrange(len(a))] for _ in a]
        rb = [b[rng.randrange(len(b))] for _ in b]
        diffs.append(median(ra) - median(rb))
    tail = (100.0 - level) / 2
    return percentile(diffs, tail), percentile(diffs, 100 - tail)


def rotations(scenarios: Sequence[Any], rounds: int, warmup: int) -> Iterator[tuple[int, bool, Any]]:
    """Round-robin interleaving: every round runs each scenario once, the starting scenario
    rotating so that no scenario always follows the same one. Yields (round, warm-up?, item)."""
    items = list(scenarios)
    for r in range(warmup + rounds):
        k = r % len(items)
        for item in items[k:] + items[:k]:
            yield r, r < warmup, item


# -- formatting -------------------------------------------------------------------------------


def num(value: Optional[float], digits: int = 2) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}" if digits > 1 else f"{value:.0f}"
    return f"{value:.{digits}f}"


def signed(value: Optional[float], digits: int = 2) -> str:
    if value is None or value != value:
        return "–"
    text = num(value, digits)
    return text if text.startswith("-") else "+" + text


def spread(s: Summary, digits: int = 2) -> str:
    if s.n == 0:
        return "–"
    label = "" if s.kind == "p10-p90" else " (range)"
    return f"{num(s.lo, digits)}–{num(s.hi, digits)}{label}"


# -- figures and sections ---------------------------------------------------------------------


@dataclass
class Figure:
    """One line of the results table: a scenario measured against its baseline."""

    key: str  # "1", "4b", ...
    name: str
    unit: str
    samples: list[float]
    baseline_name: str = ""
    baseline: Optional[list[float]] = None
    target: str = "report only"
    verdict: str = "–"  # "met", "missed by ...: why", "reported"
    digits: int = 2
    note: str = ""

    @property
    def summary(self) -> Summary:
        return summarize(self.samples)

    @property
    def base_summary(self) -> Optional[Summary]:
        return summarize(self.baseline) if self.baseline else None

    @property
    def diff(self) -> Optional[float]:
        b = self.base_summary
        return None if b is None else self.summary.median - b.median

    @property
    def ratio(self) -> Optional[float]:
        b = self.base_summary
        if b is None or not b.median:
            return None
        return self.summary.median / b.median


@dataclass
class Section:
    key: str
    title: str
    method: str  # markdown paragraph(s)
    figures: list[Figure] = field(default_factory=list)
    # Detail table: header + rows of cells (markdown), and free notes below it.
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: Optional[str] = None


def paired(a: Sequence[float], b: Sequence[float]) -> Optional[tuple[float, float, float]]:
    """Median of the per-round differences a[i] - b[i] (samples taken next to each other in
    time) and its bootstrap 90% interval; None when the samples are not paired."""
    if len(a) != len(b) or len(a) < 2:
        return None
    d = [x - y for x, y in zip(a, b)]
    rng = random.Random(11)
    meds = [median([d[rng.randrange(len(d))] for _ in d]) for _ in range(2000)]
    return median(d), percentile(meds, 5), percentile(meds, 95)


def scenario_rows(named: Sequence[tuple[str, Sequence[float]]], baseline: Sequence[float],
                  digits: int = 2, pairs: bool = True) -> tuple[list[str], list[list[str]]]:
    """A detail table: every scenario with its median, spread, n and the difference to the
    baseline with a bootstrap 90% interval; with ``pairs``, also the median of the per-round
    differences (each round runs every scenario once, close together in time)."""
    header = ["Scenario", "Median", "Spread", "n", "Δ vs baseline", "Δ 90% CI", "Ratio"]
    if pairs:
        header += ["Paired Δ (per round)", "Paired Δ 90% CI"]
    base_med = median(baseline) if baseline else float("nan")
    rows = []
    for name, xs in named:
        s = summarize(xs)
        if xs is baseline:
            row = [name + " (baseline)", num(s.median, digits), spread(s, digits), str(s.n),
                   "–", "–", "1.000"]
            rows.append(row + (["–", "–"] if pairs else []))
            continue
        lo, hi = diff_ci(xs, baseline)
        row = [name, num(s.median, digits), spread(s, digits), str(s.n),
               signed(s.median - base_med, digits),
               f"{signed(lo, digits)} … {signed(hi, digits)}",
               num(s.median / base_med if base_med else None, 3)]
        if pairs:
            p = paired(xs, baseline)
            row += ([signed(p[0], digits), f"{signed(p[1], digits)} … {signed(p[2], digits)}"]
                    if p else ["–", "–"])
        rows.append(row)
    return header, rows


# -- machine and processes --------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    return {
        "CPU": f"{cpu_model()} ({os.cpu_count()} logical cores)",
        "OS": platform.platform(),
        "Python (runner)": platform.python_version(),
    }


def say(message: str) -> None:
    """Progress on stderr (the report goes to a file)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def maybe_parallel(jobs: Sequence[Any], parallel: bool) -> list[Any]:
    """Call each job (a no-argument function); at once in threads when ``parallel`` (smoke
    mode: the jobs start subprocesses, and their times are not used), else one after another.
    Results come back in the jobs' order."""
    if not parallel or len(jobs) < 2:
        return [job() for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


def check_run(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess:
    """Run a helper command; on failure raise with the tail of its output."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    proc = subprocess.run(list(cmd), **kw)
    if proc.returncode != 0:
        tail = "\n".join(((proc.stdout or "") + (proc.stderr or "")).splitlines()[-30:])
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return proc


def importtime(stderr_text: str) -> dict[str, tuple[int, int]]:
    """Parse `-X importtime` lines: module -> (self µs, cumulative µs) (first occurrence)."""
    out: dict[str, tuple[int, int]] = {}
    for line in stderr_text.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        try:
            self_us, cum_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue  # the header line
        name = parts[2].strip()
        out.setdefault(name, (self_us, cum_us))
    return out


# -- the report -------------------------------------------------------------------------------


def _verdict_cell(fig: Figure) -> str:
    return fig.verdict


def render(meta: dict[str, Any], sections: Sequence[Section]) -> str:
    lines: list[str] = []
    add = lines.append
    add("# Benchmarks: what swanlab-autopatch costs")
    add("")
    add(f"Generated by `{meta['command']}` on {meta['date']} ({meta['mode']} mode); "
        f"the whole run took {meta['total_minutes']:.1f} min. Every figure is a median of "
        "interleaved runs measured in the same session, next to its baseline from the same "
        "session: compare the differences and ratios, not absolute times with another machine "
        "or another day.")
    add("")
    if meta["mode"] == "smoke":
        add("**Smoke run**: a handful of iterations per measurement, and measurements and "
            "their processes run at the same time to save time, so the figures below only show "
            "that every measurement runs. Use the full run (`python benchmarks/run.py`) for "
            "numbers.")
        add("")
    add("## Machine")
    add("")
    add("| | |")
    add("|---|---|")
    for key, value in meta["machine"].items():
        add(f"| {key} | {value} |")
    add(f"| Load average (1 / 5 / 15 min) at start | {meta['load_start']} |")
    add(f"| Load average (1 / 5 / 15 min) at end | {meta['load_end']} |")
    add("")
    if meta.get("load_note"):
        add(meta["load_note"])
        add("")
    add("## Versions")
    add("")
    add("| Package | " + " | ".join(meta["version_columns"]) + " |")
    add("|---|" + "---|" * len(meta["version_columns"]))
    for name, values in meta["versions"].items():
        add(f"| {name} | " + " | ".join(v or "–" for v in values) + " |")
    add("")
    add("## Results")
    add("")
    add("Spread is p10–p90 for 10 or more samples, else the range. Δ = median − baseline "
        "median; ratio = median / baseline median.")
    add("")
    add("| # | Figure | Unit | Median | Spread | n | Baseline | Baseline median | Δ | Ratio "
        "| Target | Met? |")
    add("|---|---|---|---:|---|---:|---|---:|---:|---:|---|---|")
    for sec in sections:
        if sec.error:
            add(f"| {sec.key} | {sec.title} | | | | | | | | | | **did not run**: {sec.error} |")
            continue
        for fig in sec.figures:
            s, b = fig.summary, fig.base_summary
            d = fig.digits
            add(f"| {fig.key} | {fig.name} | {fig.unit} | {num(s.median, d)} | {spread(s, d)} "
                f"| {s.n} | {fig.baseline_name or '–'} | {num(b.median, d) if b else '–'} "
                f"| {signed(fig.diff, d) if b else '–'} | {num(fig.ratio, 3) if b else '–'} "
                f"| {fig.target} | {_verdict_cell(fig)} |")
    add("")
    add("## Details")
    for sec in sections:
        add("")
        add(f"### {sec.key}. {sec.title}")
        add("")
        if sec.error:
            add(f"**This measurement did not run:** {sec.error}")
            add("")
        add(sec.method.strip())
        add("")
        if sec.header and sec.rows:
            add("| " + " | ".join(sec.header) + " |")
            add("|" + "---|" * len(sec.header))
            for row in sec.rows:
                add("| " + " | ".join(row) + " |")
            add("")
        for note in sec.notes:
            add(f"- {note}")
        if sec.notes:
            add("")
        add(f"_Section runtime: {sec.seconds:.0f} s._")
    add("")
    return "\n".join(lines)
