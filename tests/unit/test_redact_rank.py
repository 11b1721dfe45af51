"""The one redaction helper, and the rank/world size read from launcher variables only."""
from __future__ import annotations

import sys

import pytest

from swanlab_autopatch import rank
from swanlab_autopatch.redact import MASK, is_secret_key, mask, redact, redact_yaml_text, register_secret

CANARY = "CANARY-5e2b"

# -- which keys are secret -------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    "swanlab_api_key", "api_key", "apikey", "API_KEY", "wandb_api_key", "comet_api_key",
    "openai_api_key", "hub_token", "hf_token", "HF_TOKEN", "access_token", "auth_token",
    "token", "api_token", "github_token", "refresh_token", "session_token", "bearer_token",
    "secret", "swanlab_lark_secret", "client_secret", "password", "db_password", "passwd",
    "private_key", "secret_key", "aws_secret_access_key", "aws_access_key", "credential",
    "credentials", "swanlab_lark_webhook_url", "webhook", "slack_webhook", "webhook_url",
    "authorization",
])
def test_secret_keys(key):
    assert is_secret_key(key)
    assert redact({key: CANARY}) == {key: MASK}


@pytest.mark.parametrize("key", [
    "pad_token", "eos_token", "bos_token", "unk_token", "sep_token", "cls_token", "mask_token",
    "eot_token", "image_token", "im_start_token", "max_tokens", "tokens", "num_tokens",
    "max_new_tokens", "tokenizer_type", "tokenizer_config", "token_ids", "pad_token_id",
    "special_tokens", "added_tokens_overrides", "eot_tokens", "train_on_eos", "keys",
    "base_model", "learning_rate", "hub_model_id", "hub_strategy", "wandb_project",
    "mlflow_tracking_uri", "swanlab_project", "secretary_count", "api_host", "swanlab_api_host",
    "key", "dataset_key",
])
def test_not_secret_keys(key):
    assert not is_secret_key(key)
    assert redact({key: "<|kept|>"}) == {key: "<|kept|>"}


# -- redact() on nested structures ---------------------------------------------------------


def test_redact_nested_config():
    cfg = {
        "base_model": "Qwen/Qwen2.5-0.5B",
        "swanlab_api_key": CANARY,
        "special_tokens": {"pad_token": "<|endoftext|>", "eos_token": "<|im_end|>"},
        "tokens": ["<think>", "</think>"],
        "max_tokens": 2048,
        "datasets": [
            {"path": "org/data", "type": "chat_template", "hf_token": CANARY},
            {"path": f"https://user:{CANARY}@data.example.com/x.jsonl"},
        ],
        "mlflow_tracking_uri": f"http://admin:{CANARY}@mlflow.internal:5000",
        "notify": f"https://open.feishu.cn/open-apis/bot/v2/hook/{CANARY}",
        "slack": f"https://hooks.slack.com/services/T000/B000/{CANARY}",
        "report": f"https://example.com/api?access_token={CANARY}&x=1",
        "deepspeed": {"auth": {"password": CANARY, "user": "me"}},
        "api_keys": [CANARY, CANARY],
        "learning_rate": 2e-5,
        "bf16": True,
        "empty_key": None,
        "api_key": "",
        "wandb_api_key": None,
        "use_tokens": False,
        ("tuple", "key"): CANARY + "-not-a-secret-key",
        "nested": [[{"token": CANARY}]],
    }
    out = redact(cfg)
    assert CANARY not in repr({k: v for k, v in out.items() if k != ("tuple", "key")})
    assert out["base_model"] == "Qwen/Qwen2.5-0.5B"
    assert out["swanlab_api_key"] == MASK
    assert out["special_tokens"] == {"pad_token": "<|endoftext|>", "eos_token": "<|im_end|>"}
    assert out["tokens"] == ["<think>", "</think>"]
    assert out["max_tokens"] == 2048
    assert out["datasets"][0] == {"path": "org/data", "type": "chat_template", "hf_token": MASK}
    assert out["datasets"][1] == {"path": f"https://{MASK}@data.example.com/x.jsonl"}
    assert out["mlflow_tracking_uri"] == f"http://{MASK}@mlflow.internal:5000"
    assert out["notify"] == MASK
    assert out["slack"] == MASK
    assert out["report"] == f"https://example.com/api?access_token={MASK}&x=1"
    assert out["deepspeed"] == {"auth": {"password": MASK, "user": "me"}}
    assert out["api_keys"] == [MASK, MASK]
    assert out["learning_rate"] == 2e-5 and out["bf16"] is True
    assert out["empty_key"] is None and out["api_key"] == "" and out["wandb_api_key"] is None
    assert out["use_tokens"] is False
    assert out["nested"] == [[{"token": MASK}]]
    # a copy: the input is unchanged
    assert cfg["swanlab_api_key"] == CANARY and cfg["datasets"][0]["hf_token"] == CANARY


@pytest.mark.parametrize("value, expected", [
    ("https://huggingface.co/datasets/org/x", "https://huggingface.co/datasets/org/x"),
    ("s3://bucket/key", "s3://bucket/key"),
    ("http://localhost:5000", "http://localhost:5000"),
    (f"postgresql://u:{CANARY}@db/x", f"postgresql://{MASK}@db/x"),
    (f"see https://u:{CANARY}@h/p and https://v:{CANARY}@g/q",
     f"see https://{MASK}@h/p and https://{MASK}@g/q"),
    (f"https://oapi.dingtalk.com/robot/send?access_token={CANARY}", MASK),
    (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={CANARY}", MASK),
    (f"https://discord.com/api/webhooks/123/{CANARY}", MASK),
    (f"https://open.larksuite.com/open-apis/bot/v2/hook/{CANARY}", MASK),
    (f"https://h.example.com/x?token={CANARY}", f"https://h.example.com/x?token={MASK}"),
    (f"https://h.example.com/x?a=1&api_key={CANARY}#f",
     f"https://h.example.com/x?a=1&api_key={MASK}#f"),
    ("<|im_end|>", "<|im_end|>"),
    (12, 12), (1.5, 1.5), (None, None), (True, True),
])
def test_redact_values_under_ordinary_keys(value, expected):
    assert redact({"some_field": value}) == {"some_field": expected}
    assert redact([value]) == [expected]


# -- redact_yaml_text ----------------------------------------------------------------------------


YAML_IN = f"""\
# my run   (comment kept)
base_model: Qwen/Qwen2.5-0.5B  # the model
swanlab_project: demo
swanlab_api_key: {CANARY}  # do not commit this
"hub_token": '{CANARY}'
special_tokens:
  pad_token: "<|endoftext|>"
  eos_token: <|im_end|>
max_tokens: 512

datasets:
  - path: https://user:{CANARY}@data.example.com/x.jsonl
    type: chat_template
  - hf_token: {CANARY}
swanlab_lark_webhook_url: "https://open.feishu.cn/open-apis/bot/v2/hook/{CANARY}"
swanlab_lark_secret: >-
  {CANARY}
  {CANARY}
learning_rate: 2e-5
notify: https://hooks.slack.com/services/T0/B0/{CANARY}
\tweird_indent: 1
"""

YAML_OUT = f"""\
# my run   (comment kept)
base_model: Qwen/Qwen2.5-0.5B  # the model
swanlab_project: demo
swanlab_api_key: {MASK}  # do not commit this
"hub_token": {MASK}
special_tokens:
  pad_token: "<|endoftext|>"
  eos_token: <|im_end|>
max_tokens: 512

datasets:
  - path: https://{MASK}@data.example.com/x.jsonl
    type: chat_template
  - hf_token: {MASK}
swanlab_lark_webhook_url: {MASK}
swanlab_lark_secret: {MASK}
  {MASK}
  {MASK}
learning_rate: 2e-5
notify: {MASK}
\tweird_indent: 1
"""


def test_redact_yaml_text_keeps_layout_and_comments():
    out = redact_yaml_text(YAML_IN)
    assert CANARY not in out
    assert out == YAML_OUT


@pytest.mark.parametrize("line, expected", [
    (f"auth: {{api_key: {CANARY}, user: me}}", f"auth: {{api_key: {MASK}, user: me}}"),
    (f"- {{hub_token: '{CANARY}'}}", f"- {{hub_token: {MASK}}}"),
    (f"hf_token: '{CANARY} # not a comment'  # a comment", f"hf_token: {MASK}  # a comment"),
    (f'password: "a\\"{CANARY}"', f"password: {MASK}"),
    (f"wandb_api_key:\n  {CANARY}\nnext: 1", f"wandb_api_key:\n  {MASK}\nnext: 1"),
    (f"credentials:\n  user: {CANARY}\n\n  key: {CANARY}\nnext: 1",
     f"credentials:\n  {MASK}\n\n  {MASK}\nnext: 1"),
    ("api_key:\nnext: 1", "api_key:\nnext: 1"),
    (f"eos_token: '</s>'  # {CANARY} is not secret here",
     f"eos_token: '</s>'  # {CANARY} is not secret here"),
])
def test_redact_yaml_text_forms(line, expected):
    assert redact_yaml_text(line) == expected


def test_redact_yaml_text_keeps_line_endings_and_a_missing_final_newline():
    text = f"a: 1\r\napi_key: {CANARY}\r\nb: 2"
    assert redact_yaml_text(text) == f"a: 1\r\napi_key: {MASK}\r\nb: 2"


def test_redact_yaml_text_on_plain_text_without_secrets_is_identity():
    text = "base_model: x\n# token: not a key, a comment\nlist:\n  - a\n  - b\n\n"
    assert redact_yaml_text(text) == text


def test_mask_hides_registered_secrets(monkeypatch):
    from swanlab_autopatch import redact as module

    monkeypatch.setattr(module, "_registered", set())
    register_secret(CANARY, "", "ab", None, 123)
    assert mask(f"failed with {CANARY}!") == f"failed with {MASK}!"
    assert mask("ab stays") == "ab stays"  # too short to mask safely


def test_mask_hides_environment_secrets_and_url_credentials(monkeypatch):
    monkeypatch.setenv("SWANLAB_API_KEY", "env-CANARY-91")
    monkeypatch.setenv("HF_TOKEN", "hf-CANARY-72")
    monkeypatch.setenv("SWANLAB_PROJ_NAME", "plain-project")  # not a secret name: kept
    text = mask("key env-CANARY-91, token hf-CANARY-72, project plain-project, host "
                "https://bob:pw-CANARY@swan.example.com/api, hook "
                "https://open.feishu.cn/open-apis/bot/v2/hook/abc-CANARY")
    assert "CANARY" not in text, text
    assert "plain-project" in text and "swan.example.com" in text


def test_every_message_of_the_package_is_masked(monkeypatch, capsys):
    from swanlab_autopatch import _startup, log

    monkeypatch.setenv("SWANLAB_API_KEY", "env-CANARY-55")
    log.warning("boom env-CANARY-55")
    _startup.warn("activation env-CANARY-55")
    err = capsys.readouterr().err
    assert "boom ***" in err and "activation ***" in err and "CANARY" not in err


# -- rank --------------------------------------------------------------------------------------


@pytest.mark.parametrize("launcher, env, expected", [
    ("none", {}, (0, 1, "default")),
    ("torchrun rank 3 of 8", {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8",
                              "LOCAL_WORLD_SIZE": "4"}, (3, 8, "RANK")),
    ("torchrun node 2, local 0", {"RANK": "4", "LOCAL_RANK": "0", "WORLD_SIZE": "8"},
     (4, 8, "RANK")),
    ("accelerate main", {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, (0, 2, "RANK")),
    ("deepspeed", {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2",
                   "CROSS_RANK": "0"}, (1, 2, "RANK")),
    ("SLURM srun", {"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1"},
     (5, 16, "SLURM_PROCID")),
    ("torchrun under SLURM", {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "RANK": "6",
                              "WORLD_SIZE": "8"}, (6, 8, "RANK")),
    ("Open MPI", {"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4",
                  "OMPI_COMM_WORLD_LOCAL_RANK": "0"}, (2, 4, "OMPI_COMM_WORLD_RANK")),
    ("MPICH / Intel MPI", {"PMI_RANK": "1", "PMI_SIZE": "3"}, (1, 3, "PMI_RANK")),
    ("only LOCAL_RANK", {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, (1, 2, "LOCAL_RANK")),
    ("RANK before LOCAL_RANK", {"RANK": "0", "LOCAL_RANK": "3", "WORLD_SIZE": "4"},
     (0, 4, "RANK")),
    ("garbage RANK falls through", {"RANK": "abc", "LOCAL_RANK": "2", "WORLD_SIZE": "4"},
     (2, 4, "LOCAL_RANK")),
    ("blank values", {"RANK": "", "WORLD_SIZE": " "}, (0, 1, "default")),
    ("spaces", {"RANK": " 1 ", "WORLD_SIZE": " 2 "}, (1, 2, "RANK")),
    ("world size 0", {"WORLD_SIZE": "0"}, (0, 1, "default")),
    ("mpirun inside an sbatch step", {"SLURM_PROCID": "0", "SLURM_NTASKS": "1",
                                      "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8"},
     (3, 8, "OMPI_COMM_WORLD_RANK")),
    ("PMIx (Open MPI 5)", {"PMIX_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4", "SLURM_PROCID": "0"},
     (2, 4, "PMIX_RANK")),
    ("MVAPICH", {"MV2_COMM_WORLD_RANK": "5", "MV2_COMM_WORLD_SIZE": "6", "SLURM_PROCID": "1",
                 "SLURM_NTASKS": "2"}, (5, 6, "MV2_COMM_WORLD_RANK")),
    ("MPICH under srun", {"PMI_RANK": "1", "PMI_SIZE": "4", "SLURM_PROCID": "0",
                          "SLURM_NTASKS": "4"}, (1, 4, "PMI_RANK")),
    ("torchrun beats MPI", {"RANK": "0", "WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1",
                            "OMPI_COMM_WORLD_SIZE": "2"}, (0, 2, "RANK")),
    ("multi-node torchrun, node 1", {"RANK": "1", "LOCAL_RANK": "0", "WORLD_SIZE": "2",
                                     "GROUP_RANK": "1"}, (1, 2, "RANK")),
])
def test_rank_from_the_environment(launcher, env, expected):
    info = rank.current(env)
    assert (info.rank, info.world_size, info.source) == expected, launcher
    assert info.is_main is (expected[0] == 0)
    assert info.distributed is (expected[1] > 1)


def test_rank_reads_os_environ_by_default(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS",
                 "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE",
                 "PMIX_RANK", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    info = rank.current()
    assert (info.rank, info.world_size, info.is_main) == (1, 2, False)


def test_rank_never_imports_torch(monkeypatch):
    """Config loading runs before any process group exists: not even an import attempt."""
    attempts = []

    class Recorder:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                attempts.append(name)
            return None

    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Recorder(), *sys.meta_path])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    from swanlab_autopatch import log

    rank.current()
    log.info("a message that must be demoted to debug on rank 1")
    assert attempts == []
