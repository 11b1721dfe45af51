#!/usr/bin/env python3
"""`make demo`: the whole promise on this machine, from nothing.

1. a virtual environment with Python 3.11, CPU torch 2.13.0, Axolotl 0.19.0 and this package
   (cached in ~/.cache/swanlab-autopatch; the first time takes a few minutes);
2. a tiny model, tokenizer and dataset built locally (nothing from a model hub);
3. `axolotl train examples/demo.yaml`, whose only tracking line is `swanlab_project`, in
   SwanLab's `local` mode (no account needed);
4. where the run is, its first and last loss read back from the run files, and how to look.
Stdlib only: it runs with the machine's python3.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import harness  # noqa: E402

READ_BACK = """
import sys
from swanlab_autopatch.runs.reader import find_runs
run = find_runs(sys.argv[1])[0]
loss = run.series("train/loss")
print(f"run folder   {run.path}")
print(f"project      {run.project}   experiment {run.name}   state {run.state}")
train = [k for k in sorted(run.scalars) if k.startswith("train/")]
print(f"steps        {len(loss)} logged; {len(run.scalars)} metrics, e.g. {', '.join(train[:5])}")
print(f"first loss   step {loss[0][0]}: {loss[0][1]:.4f}")
print(f"last loss    step {loss[-1][0]}: {loss[-1][1]:.4f}")
"""


def main() -> int:
    work = REPO / ".work" / "demo"
    print("== 1/4 environment: Python 3.11, torch 2.13.0 (CPU), Axolotl 0.19.0, swanlab-autopatch")
    venv, assets = harness.prepare("0.19.0")
    print(f"   {venv}")
    print("== 2/4 tiny model, tokenizer and dataset (built locally)")
    print(f"   {assets}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    text = (REPO / "examples" / "demo.yaml").read_text()
    cfg = work / "demo.yaml"
    cfg.write_text(text.replace("${ASSETS}", str(assets)).replace("${WORK}", str(work)))
    print(f"== 3/4 axolotl train {cfg.relative_to(REPO)}   (SWANLAB_MODE=local)")
    env = harness.training_env(venv, {"SWANLAB_MODE": "local"})
    log = work / "train.log"
    with log.open("w") as out:
        proc = subprocess.run(["axolotl", "train", str(cfg)], cwd=work, env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    for line in log.read_text(errors="replace").splitlines():
        if "[swanlab-autopatch]" in line or line.startswith("swanlab:"):
            print(f"   {line}")
    if proc.returncode != 0:
        print(f"training failed (exit {proc.returncode}); full log: {log}")
        return proc.returncode
    print("== 4/4 the run, read back from its files")
    swanlog = work / "swanlog"
    subprocess.run([harness.python_of(venv), "-c", READ_BACK, str(swanlog)], check=True,
                   env=env)
    print()
    print("Look at it in the browser (SwanLab's local dashboard):")
    print(f"   {venv}/bin/swanlab watch {swanlog} --host 127.0.0.1 --port 5092")
    print("or in the terminal:")
    print(f"   {venv}/bin/swanlab-autopatch runs {swanlog}")
    print(f"Full training log: {log}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
    sys.exit(main())
