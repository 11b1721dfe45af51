"""``python -m swanlab_autopatch.helper``: the helper process (see main.py)."""
from swanlab_autopatch.helper.main import run_and_exit

run_and_exit()
