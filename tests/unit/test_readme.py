"""The README and docs/messages.md say only what the package does.

- Every `[swanlab-autopatch] LEVEL: ...` line they quote (in a code span or a code block) is a
  message the package's source can print: it matches a string literal or f-string of the
  source, with `{...}` placeholders there and `<...>`, `...`, `…` in the docs as wildcards, at
  the level of the log call that prints it.
- Where it is cheap, a quoted line is compared with the real output: the validation errors
  (settings.parse with the value the docs show), the missing-key warning, the newer-client
  line, and the alert examples (the alert rules fed with the run the README describes).
- The README is under 300 lines, its relative links (and those of the docs it links to)
  resolve to files and headings, the `swanlab_*` keys it names exist in the settings model, and
  it names every alert and channel key. The W&B table has no blank cell.
"""
from __future__ import annotations

import ast
import io
import logging
import re
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "swanlab_autopatch"
README = REPO / "README.md"
MESSAGES = REPO / "docs" / "messages.md"
# The docs the README's restructuring moved text into: their links are checked too.
OWN_DOCS = [REPO / "docs" / n for n in ("messages.md", "how-it-works.md", "distributed.md",
                                        "development.md", "performance.md", "options.md")]
PREFIX = "[swanlab-autopatch]"
LINE_RE = re.compile(r"^\[swanlab-autopatch\] (DEBUG|INFO|WARNING|ERROR): (.+)$")
WILD = "\x00"  # one wildcard: any text, also none


# -- what the docs quote ------------------------------------------------------------------------

def _code_texts(text: str) -> list[str]:
    """The contents of code blocks (line by line) and of inline code spans."""
    out, prose, fence = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence = "```"
            continue
        if fence is not None:
            if stripped.startswith("```"):
                fence = None
            else:
                out.append(line)
            continue
        prose.append(line)
    for line in prose:  # spans: a run of backticks, the shortest text, the same run again
        for match in re.finditer(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", line):
            content = match.group(2)
            if content.startswith(" ") and content.endswith(" ") and content.strip():
                content = content[1:-1]
            out.append(content)
    return out


def quoted(path: Path) -> list[str]:
    """The message lines quoted (not the bare prefix, or the prefix and a level, in prose)."""
    return [t.strip() for t in _code_texts(path.read_text(encoding="utf-8"))
            if t.strip().startswith(PREFIX)
            and not re.fullmatch(r"\[swanlab-autopatch\]( [A-Z]+:)?", t.strip())]


def code_blocks(path: Path) -> list[str]:
    blocks, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _doc_pattern(message: str) -> str:
    return re.sub(r"<[^<>]*>|\.\.\.|…", WILD, message)


# -- what the source can print ------------------------------------------------------------------

LOG_LEVELS = {"info": "INFO", "warning": "WARNING", "error": "ERROR", "debug": "DEBUG"}


def _template(node: ast.AST) -> str | None:
    """A string expression as a pattern: literal text, WILD for what is computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.sub(r"\{[^{}]*\}", WILD, node.value)  # str.format templates
    if isinstance(node, ast.JoinedStr):
        return "".join(_template(v) or WILD if isinstance(v, ast.Constant) else WILD
                       for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        if left is None and right is None:
            return None
        return (left if left is not None else WILD) + (right if right is not None else WILD)
    return None


@lru_cache(maxsize=1)
def source_templates() -> list[tuple[str, frozenset[str]]]:
    """(pattern, levels) for every string expression of the package; levels is the set of
    levels of the log calls that print it directly, empty when it is printed some other way
    (an exception's text, a message built in a variable)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        direct: dict[int, str] = {}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LOG_LEVELS and node.args):
                direct[id(node.args[0])] = LOG_LEVELS[node.func.attr]
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                continue
            pattern = _template(node)
            if pattern is None:
                continue
            # Too little fixed text to say anything ("{title}: {text}" matches every line).
            if len(re.sub(r"[^A-Za-z0-9]", "", pattern.replace(WILD, ""))) < 10:
                continue
            levels = found.setdefault(pattern, set())
            if id(node) in direct:
                levels.add(direct[id(node)])
    return [(p, frozenset(levels)) for p, levels in found.items()]


LICENCE = 4  # fixed characters the doc and the code must share before a "..." of the doc
MID_ABSORB = 8  # fixed characters of the code a "..." inside a doc line may stand for


def compatible(doc: str, code: str) -> bool:
    """Some text matches both the doc's pattern and the code's (WILD: any text), with limits
    on what a wildcard of the doc may stand for. A placeholder of the code stands for any text
    of the doc (a value). A wildcard of the doc stands for the code's placeholders freely, but
    for the code's fixed text only right after at least LICENCE characters of the doc matched
    the code's fixed text (or at the start), and, unless it ends the doc's line (a shortened
    message: "Ways out: ..."), for at most MID_ABSORB such characters. So a doc line whose
    fixed text differs from the code's is not rescued by its wildcards."""
    n, m = len(doc), len(code)
    seen, todo = set(), [(0, 0, LICENCE, 0)]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        i, j, run, took = state  # run: fixed characters just matched (capped); took: fixed
        if i == n and j == m:    # characters of the code the doc's current wildcard took
            return True
        d = doc[i] if i < n else None
        c = code[j] if j < m else None
        if d == WILD:
            todo.append((i + 1, j, 0, 0))  # the doc's wildcard ends
            if c == WILD:
                todo.append((i, j + 1, run, took))  # ... or stands for a placeholder
            elif c is not None and run >= LICENCE and (i == n - 1 or took < MID_ABSORB):
                todo.append((i, j + 1, run, took + 1))  # ... or for fixed text
            if code.startswith("...", j):  # a "..." of the doc as the code writes it
                todo.append((i + 1, j + 3, LICENCE, 0))
        if c == WILD:
            todo.append((i, j + 1, run, 0))  # the code's placeholder ends
            if d is not None:
                todo.append((i + 1, j, 0, 0))  # ... or stands for the doc's next char
        if d is not None and c is not None and d == c and d != WILD:
            todo.append((i + 1, j + 1, min(run + 1, LICENCE), 0))
    return False


GRAM = 10


@lru_cache(maxsize=1)
def _index() -> dict[str, set[int]]:
    index: dict[str, set[int]] = {}
    for k, (pattern, _) in enumerate(source_templates()):
        for part in pattern.split(WILD):
            for i in range(len(part) - GRAM + 1):
                index.setdefault(part[i:i + GRAM], set()).add(k)
    return index


def producers(level: str, message: str) -> list[str]:
    """The source patterns that can print this quoted message at this level."""
    doc = _doc_pattern(message)
    hits: dict[int, int] = {}
    for part in doc.split(WILD):
        for i in range(len(part) - GRAM + 1):
            for k in _index().get(part[i:i + GRAM], ()):
                hits[k] = hits.get(k, 0) + 1
    templates = source_templates()
    out = []
    for k in sorted(hits, key=hits.get, reverse=True)[:40]:
        pattern, levels = templates[k]
        if levels and level not in levels:
            continue
        if compatible(doc, pattern):
            out.append(pattern.replace(WILD, "{…}"))
    return out


def _all_quoted() -> list[tuple[str, str]]:
    return [(path.name, line) for path in (README, MESSAGES) for line in quoted(path)]


def test_docs_quote_some_messages():
    names = {name for name, _ in _all_quoted()}
    assert names == {"README.md", "messages.md"}, names
    assert len(quoted(MESSAGES)) > 50


@pytest.mark.parametrize("where,line", _all_quoted(), ids=lambda v: v[:70])
def test_quoted_message_is_printed_by_the_code(where, line):
    match = LINE_RE.match(line)
    assert match, f"{where}: not a '{PREFIX} LEVEL: message' line: {line}"
    level, message = match.groups()
    if line in _real_errors():  # put together from two texts; the real line, exactly
        return
    # An alert's line is put together from several texts (helper/alerts.py): it is compared
    # with the lines the rules really make (and exactly, in test_alert_examples_...).
    alert_lines = [a.line for a in _example_run() if a.kind != "end"]
    doc = re.compile(".*".join(re.escape(part) for part in _doc_pattern(message).split(WILD)))
    if level == "WARNING" and any(doc.fullmatch(a) for a in alert_lines):
        return
    assert producers(level, message), (
        f"{where} quotes a message that no string of swanlab_autopatch/ produces at level "
        f"{level}:\n  {line}")


def test_the_matcher_refuses_what_the_code_does_not_say():
    assert producers("INFO", "SwanLab tracking enabled because swanlab_project is set "
                             "(use_swanlab: true is implied).")
    assert not producers("WARNING", "SwanLab tracking enabled because swanlab_project is set "
                                    "(use_swanlab: true is implied).")  # wrong level
    assert not producers("INFO", "SwanLab tracking enabled because the project is set.")
    assert not producers("WARNING", "SwanLab cloud mode could not start (<reason>); this run is "
                                    "recorded offline in <folder>. Upload it later with: ...")
    # A "..." inside the line does not swallow a changed word after it.
    assert producers("WARNING", "SwanLab's helper process ended unexpectedly (...); training "
                                "goes on untracked from here. The run so far is in <folder>.")
    assert not producers("WARNING", "SwanLab's helper process ended unexpectedly (...); training "
                                    "goes on without tracking from here. The run so far is in "
                                    "<folder>.")
    # A message the code builds from a value's text is matched at its level only.
    assert not producers("WARNING", "SwanLab run <name> is kept offline; upload it with: "
                                    "swanlab sync --id <id> <folder>")


# -- real output --------------------------------------------------------------------------------

# The values the docs show for each validation error they quote in full.
BAD_CONFIGS = [
    {"use_swanlab": True},
    {"swanlab_project": "x", "swanlab_mode": "clod"},
    {"swanlab_project": "my project"},
    {"swanlab_project": ""},
    {"swanlab_project": "x", "swanlab_telegram_chat_id": 123456789},
    {"swanlab_project": "x", "swanlab_slack_webhook_url": "hooks.slack.com/services/T0/B0/x"},
    {"swanlab_project": "x", "swanlab_alert_stall_minutes": 0},
]


@lru_cache(maxsize=1)
def _real_errors() -> frozenset[str]:
    from swanlab_autopatch.config.settings import parse
    from swanlab_autopatch.errors import SwanLabConfigError

    lines = set()
    for cfg in BAD_CONFIGS:
        try:
            parse(cfg, env={})
        except SwanLabConfigError as error:
            lines.add(f"{PREFIX} ERROR: {error}")
        else:
            raise AssertionError(f"settings.parse accepted {cfg}")
    return frozenset(lines)


def test_quoted_validation_errors_are_the_real_lines():
    real = _real_errors()
    concrete = [line for _, line in _all_quoted()
                if line.startswith(f"{PREFIX} ERROR:") and WILD not in _doc_pattern(line)
                and "logging tools" not in line and "command line" not in line]
    assert len(concrete) >= 5, concrete
    for line in concrete:
        assert line in real, f"not what settings.parse says:\n  {line}\nreal:\n  " + \
            "\n  ".join(sorted(real))


def test_missing_key_warning_is_the_real_line():
    from swanlab_autopatch.config.credentials import no_key_warning

    real = f"{PREFIX} WARNING: {no_key_warning('./swanlog')}"
    for path in (README, MESSAGES):
        said = [line for line in quoted(path) if "no API key found" in line]
        assert said == [real], (path.name, said, real)


# What loading a config prints, for real: each scenario in a fresh process (the package says
# some things once per process), through the same calls as Axolotl's validate_config and
# load_cfg wrappers. A quoted line holding a scenario's marker must be one of its lines.
FLOW_SCENARIOS = {
    "distributed": ({"swanlab_project": "my-project", "swanlab_projet": "x"},
                    {"WORLD_SIZE": "4", "RANK": "0", "SWANLAB_API_KEY": "k"},
                    ("Distributed training detected", "SwanLab mode:", "Only rank 0",
                     "Other ranks will skip", "Unknown SwanLab key",
                     "SwanLab tracking enabled because")),
    "no key": ({"swanlab_project": "my-project"}, {}, ("no API key found",)),
    "two trackers": ({"swanlab_project": "my-project", "wandb_project": "x"},
                     {"SWANLAB_API_KEY": "k"}, ("Multiple logging tools",)),
    "three trackers": ({"swanlab_project": "my-project", "wandb_project": "x",
                        "mlflow_experiment_name": "x"}, {"SWANLAB_API_KEY": "k"},
                       ("logging tools enabled simultaneously",)),
    "lark": ({"swanlab_project": "my-project",
              "swanlab_lark_webhook_url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc"},
             {"SWANLAB_API_KEY": "k"}, ("Lark webhook has no secret",)),
    "off": ({"use_swanlab": False, "swanlab_project": "x"}, {}, ("use_swanlab is false",)),
    "disabled": ({"swanlab_project": "x", "swanlab_mode": "disabled"}, {},
                 ("swanlab_mode is disabled",)),
    "from env": ({"use_swanlab": True}, {"SWANLAB_PROJ_NAME": "my-project",
                                         "SWANLAB_API_KEY": "k"},
                 ("taken from the environment variable",)),
}
_FLOW = """
import json, sys
from swanlab_autopatch.config import flow
cfg = json.loads(sys.argv[1])
record = flow.before_validate(dict(cfg))
validated = dict(cfg)
flow.after_validate(record, validated)
flow.announce(validated)
"""


@lru_cache(maxsize=1)
def flow_output() -> dict[str, list[str]]:
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    home = tempfile.mkdtemp(prefix="readme-home-")  # no saved login, no swanlab.yaml
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SWANLAB", "WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM",
                                 "OMPI", "PMI", "MV2", "PMIX", "RAY_ADDRESS"))}
    base.update(HOME=home, PYTHONPATH=str(REPO), SWANLAB_ROOT=os.path.join(home, ".swanlab"))

    def run(item):
        name, (cfg, env, _) = item
        done = subprocess.run([sys.executable, "-c", _FLOW, json.dumps(cfg)], cwd=home,
                              env={**base, **env}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        return name, done.stderr.splitlines() + done.stdout.splitlines()

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(run, FLOW_SCENARIOS.items()))


def _doc_regex(message: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in _doc_pattern(message).split(WILD)))


def test_quoted_config_messages_are_the_real_lines():
    checked = 0
    for where, line in _all_quoted():
        for name, (_, _, markers) in FLOW_SCENARIOS.items():
            if any(marker in line for marker in markers):
                real = flow_output()[name]
                assert any(_doc_regex(line).fullmatch(r) for r in real), (
                    f"{where}: not what a config load prints ({name}):\n  {line}\nreal:\n  "
                    + "\n  ".join(real))
                checked += 1
    assert checked >= 12, checked


def test_run_location_lines_are_the_real_lines(monkeypatch):
    from swanlab_autopatch.tracking import compat, run_messages

    folder = "swanlog/run-20261206_101500-ab12cd34"
    sync = compat.sync_command(folder, run_id="ab12cd34", host=None, workspace=None,
                               project="my-project")
    real = _said(monkeypatch, lambda: (
        run_messages.report_end({"name": "qwen-lora", "mode": "offline", "sync": sync}),
        run_messages.report_end({"name": "qwen-lora", "mode": "local", "sync": sync}),
        run_messages.report_start({"name": "qwen-lora", "mode": "local", "dir": folder}),
        run_messages.report_start({"name": "qwen-lora", "mode": "online",
                                   "url": "https://swanlab.cn/@me/my-project/runs/ab12cd34"})))
    assert len(real) == 4, real
    checked = 0
    for where, line in _all_quoted():
        if re.search(r"INFO: SwanLab run \S+( is kept| is in|:)", line):
            assert any(_doc_regex(line).fullmatch(r) for r in real), (where, line, real)
            checked += 1
    assert checked >= 4, checked


def _said(monkeypatch, action) -> list[str]:
    from swanlab_autopatch import log

    stream = io.StringIO()
    monkeypatch.setattr(log, "_said", set())
    monkeypatch.setattr(log, "_stream", stream)
    monkeypatch.setattr(log, "_on_rank_zero", lambda: True)
    log.logger().setLevel(logging.INFO)
    action()
    return stream.getvalue().splitlines()


def test_newer_client_line_is_the_real_line(monkeypatch):
    from swanlab_autopatch.tracking import compat

    monkeypatch.setattr(compat, "_client_version", lambda: "0.11.0")
    real = _said(monkeypatch, compat.announce_client)
    assert len(real) == 1
    for path in (README, MESSAGES):
        said = [line for line in quoted(path) if "newer than the clients" in line]
        assert said == real, (path.name, said, real)


def _example_run():
    """The run the README's alert examples describe: 500 steps of 7.44 s, a spike at step 120,
    an evaluation every 100 steps."""
    from swanlab_autopatch.helper.alerts import AlertConfig, AlertRules

    rules = AlertRules(AlertConfig())
    rules.on_start(0.0, name="qwen-lora", project="my-project",
                   folder="swanlog/run-20261206_101500-ab12cd34", total_steps=500)
    alerts, now = [], 0.0
    for step in range(1, 501):
        now += 7.44
        metrics = {"train/loss": 7.9 if step == 120 else 2.0 - step * 0.0015}
        if step % 100 == 0:
            metrics["eval/loss"] = 1.35 if step == 500 else 1.4 - step * 0.0002
        alerts += rules.on_metrics(step, metrics, now)
    alerts += rules.on_end("finished", now)
    return alerts


def test_alert_examples_are_what_the_rules_say():
    alerts = _example_run()
    assert [a.kind for a in alerts] == ["loss_spike", "end"]
    spike, end = alerts
    said = [line for line in quoted(README) if "loss spike at" in line]
    assert said == [f"{PREFIX} WARNING: {spike.line}"], said
    assert f"{end.title}\n{end.text}\n" in code_blocks(README), "the README's end message is not the real one"


# -- the README's shape -------------------------------------------------------------------------

def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < 300, f"README.md has {lines} lines"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("path", [README, *OWN_DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links or path != README
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.exists(), f"{path.name}: {link}: no such file"
        if anchor:
            assert anchor in _anchors(file), f"{path.name}: {link}: no such heading"


def _keys_named(path: Path) -> set[str]:
    keys = set()
    for text in _code_texts(path.read_text(encoding="utf-8")):
        if text.strip().startswith(PREFIX):  # a message: checked against the code instead
            continue
        keys |= set(re.findall(r"(?<![\w./-])((?:use_)?swanlab_[a-z_]+)\b", text))
    return keys - {"swanlab_autopatch"}


def test_keys_the_readme_names_exist():
    from swanlab_autopatch.config.settings import SwanLabSettings

    named = _keys_named(README)
    assert "swanlab_project" in named and "swanlab_watch" in named
    unknown = sorted(named - set(SwanLabSettings.model_fields))
    assert not unknown, f"README names keys the settings model does not have: {unknown}"


def test_readme_names_every_alert_and_channel_key():
    from swanlab_autopatch.config import channels

    section = README.read_text(encoding="utf-8").split("## Alerts and notifications", 1)[1]
    section = section.split("\n## ", 1)[0]
    named = set(re.findall(r"`(swanlab_[a-z_]+)`", section))
    wanted = set(channels.ALERT_KEYS) | {k for c in channels.CHANNELS for k in c.keys}
    assert not wanted - named, f"missing from 'Alerts and notifications': {wanted - named}"


def test_wandb_table_has_no_blank_cell():
    section = README.read_text(encoding="utf-8").split("## Coming from W&B", 1)[1]
    rows = [line for line in section.split("\n## ", 1)[0].splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    assert len(rows) >= 8
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 2 and all(cells), row
