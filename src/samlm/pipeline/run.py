"""``samlm train``: fine-tune on a task (or a mixture of tasks, ``mixture.py``) with SAM
or its baseline, keep the best checkpoint.

A run folder holds ``config.yaml`` (the resolved options), ``log.jsonl`` (one line per
Trainer log: training loss, SAM statistics, validation metrics), ``tensorboard/``,
``checkpoints/`` while it runs (for ``--resume``), then ``best/`` (the best model by the
task's main metric on the validation examples) and ``metrics.json`` (its scores on the
reported dev examples, and on the validation examples) when it is done. With
``validation_size`` the validation examples are held out apart from the reported ones
(``pipeline/data.py``); without it the run selects on the dev examples it reports.

Under a launcher (``torchrun --nproc_per_node N``) every process runs this; the main
process alone prepares and writes the run folder, the others wait for it and share its
errors, and the Trainer runs DDP (``--batch-size`` is per process).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import PartialState
from transformers import (
    PrinterCallback,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available

from ..hf_bars import hf_bars
from ..tasks.base import TEXT_MODELLING
from ..training import (
    CausalLMTrainer,
    SAMCausalLMTrainer,
    SAMSeq2SeqTrainer,
    SAMTrainer,
    with_lora_flatness,
)
from .adapters import apply_lora
from .config import FIELD_DEFAULTS, TrainConfig, check_output_path
from .job import TaskJob
from .mixture import MixtureJob
from .models import ModelChoice

DEFAULT_LR = {"adamw": 1e-4, "adafactor": 1e-3, "sgd": 1e-2}
TRAINER_OPTIM = {"adamw": "adamw_torch", "adafactor": "adafactor", "sgd": "sgd"}
# where the run folder and the data are is not what the run is: a moved folder resumes
RESUME_IGNORES = ("output", "data_dir", "progress")
RUNTIME_NAMES = ("runtime", "samples_per_second", "steps_per_second")
# (modelling, with SAM) -> the Trainer class; text2text and causal evaluate by generation
TRAINERS = {
    ("encoder", False): Trainer,
    ("encoder", True): SAMTrainer,
    ("text2text", False): Seq2SeqTrainer,
    ("text2text", True): SAMSeq2SeqTrainer,
    ("causal", False): CausalLMTrainer,
    ("causal", True): SAMCausalLMTrainer,
}


class JsonlLog(TrainerCallback):
    """Appends every Trainer log (loss, SAM statistics, dev metrics) to ``log.jsonl``; a
    resumed run first drops the rows past its checkpoint's step, which it logs again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.path.is_file():
            rows = self.path.read_text().splitlines(keepends=True)
            kept = [r for r in rows if r.strip() and json.loads(r)["step"] <= state.global_step]
            self.path.write_text("".join(kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def _tensorboard(folder: Path) -> TrainerCallback:
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(folder)))


def _check_output(cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Raise when the run folder cannot be used (nothing is read but its config, nothing
    is written): an existing run without --resume or --overwrite, or --resume with
    options that differ from the run's."""
    out = Path(cfg.output)
    if overwrite or not (out.exists() and any(out.iterdir())):
        return
    if not resume:
        raise FileExistsError(
            f"output folder {out} exists and is not empty: pass --resume to continue the "
            "run in it or --overwrite to replace it"
        )
    saved_path = out / "config.yaml"
    if saved_path.is_file():
        saved = yaml.safe_load(saved_path.read_text())["options"]
        # an option added since the run started is saved as its default value
        saved = {**FIELD_DEFAULTS, **saved}
        now = cfg.to_dict()
        diff = [k for k in now if k not in RESUME_IGNORES and saved.get(k) != now[k]]
        if diff:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in diff)
            raise ValueError(f"--resume with options that differ from the run in {out}: {details}")


def _prepare_output(cfg: TrainConfig, resume: bool, overwrite: bool) -> Path | None:
    """Make the run folder :func:`_check_output` accepted (``train`` checks it before the
    model loads); returns the checkpoint to resume from (or None)."""
    out = Path(cfg.output)
    if overwrite and out.exists():
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()):  # --resume
        return last_complete_checkpoint(out / "checkpoints")
    out.mkdir(parents=True, exist_ok=True)
    return None


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` the Trainer finished writing (it writes
    ``trainer_state.json`` last), so a run killed while saving resumes from the one
    before."""
    if not folder.is_dir():
        return None
    steps = []
    for path in folder.iterdir():
        step = path.name.removeprefix("checkpoint-")
        if path.is_dir() and step.isdigit() and (path / TRAINER_STATE_NAME).is_file():
            steps.append((int(step), path))
    return max(steps)[1] if steps else None


def _main_first(state: PartialState, fn):
    """``fn()`` on the main process only; every process returns its result or raises its
    error (so no process waits forever for one that failed)."""
    box: list[Any] = [None]
    if state.is_main_process:
        try:
            box = [(True, fn())]
        except Exception as error:  # re-raised on every process
            box = [(False, error)]
    if state.num_processes > 1:
        torch.distributed.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _steps(cfg: TrainConfig, n_train: int) -> int:
    """``max_steps``, or with ``min_steps`` the step budget
    ``max(min_steps, ceil(epochs x steps per epoch))`` (-1: train by epochs)."""
    if cfg.max_steps != -1 or not cfg.min_steps:
        return cfg.max_steps
    return cfg.budget_steps(n_train)


def _training_args(
    cfg: TrainConfig,
    metric: str,
    choice: ModelChoice,
    base: str,
    out: Path,
    n_train: int,
    overrides: dict[str, Any],
):
    strategy = "steps" if cfg.save_steps else "epoch"
    if cfg.bf16 and not (is_torch_bf16_gpu_available() or is_torch_xla_available()):
        raise ValueError(
            "--bf16 needs a GPU (or TPU) with bfloat16 support, and this machine has none: "
            "drop --bf16 to train in float32"
        )
    kwargs: dict[str, Any] = dict(
        output_dir=str(out / "checkpoints"),
        report_to=[],  # TensorBoard through our own callback, writing to out/tensorboard
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.epochs,
        max_steps=_steps(cfg, n_train),
        learning_rate=cfg.learning_rate or DEFAULT_LR[base],
        lr_scheduler_type=cfg.lr_scheduler or ("constant" if base == "adafactor" else "linear"),
        optim=TRAINER_OPTIM[base],
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a share of the steps
        max_grad_norm=cfg.max_grad_norm,
        bf16=cfg.bf16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=cfg.save_steps,
        save_steps=cfg.save_steps or 500,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=not cfg.progress,
        # without it the Trainer runs each launched CPU process alone instead of DDP on gloo
        use_cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
        # each process's loss is its own mean (DDP averages the gradients); with True the
        # Trainer multiplies the loss by the process count for models that accept loss
        # kwargs, and BERT-style heads accept them without using them
        average_tokens_across_devices=False,
    )
    kwargs.update(overrides)
    if choice.modelling in TEXT_MODELLING:  # a decoder's limit counts new tokens only
        return Seq2SeqTrainingArguments(
            predict_with_generate=True, generation_max_length=cfg.max_target_length, **kwargs
        )
    return TrainingArguments(**kwargs)


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
    log=print,
) -> dict[str, Any]:
    """Run one fine-tuning, on one task or a mixture (``mixture.py``); returns what
    ``metrics.json`` holds. Everything that can be checked (tasks, model, options, data,
    output folder) is checked before training. Without ``cfg.progress``, no bar at all:
    the Trainer's and the Hugging Face libraries' (weight loading, dataset maps)."""
    with hf_bars(cfg.progress):
        return _train(cfg, resume, overwrite, callbacks, log)


def _train(
    cfg: TrainConfig,
    resume: bool,
    overwrite: bool,
    callbacks: Sequence[TrainerCallback],
    log,
) -> dict[str, Any]:
    if resume and overwrite:
        raise ValueError("--resume continues the run in --output, --overwrite deletes it: give one")
    check_output_path(cfg.output)  # first: a file there is refused before any data is read
    job = MixtureJob(cfg) if cfg.is_mixture() else TaskJob(cfg)
    choice = job.choice
    base = cfg.base_optimizer if cfg.base_optimizer != "auto" else choice.default_base_optimizer()
    out = Path(cfg.output)
    args = _training_args(cfg, job.metric, choice, base, out, job.n_train, job.training_overrides())
    state: PartialState = args.distributed_state  # one process, or a launcher's
    if not state.is_main_process:
        log = _silent
    done = out / "metrics.json"
    if resume and done.is_file():
        log(f"{out}: this run is complete; its metrics are in {done}")
        return json.loads(done.read_text())
    sam = cfg.sam_config(choice.default_rho(cfg.optimizer)) if cfg.optimizer != "baseline" else None
    resolved = _resolved(job, base, args.learning_rate, sam)
    # before the model loads; on the main process only (the others must not see the folder
    # the main process makes meanwhile)
    _main_first(state, lambda: _check_output(cfg, resume, overwrite))
    model, tokenizer = _load_model(cfg, job)
    checkpoint = _main_first(state, lambda: _prepare(cfg, resume, overwrite, resolved))
    if job.note:
        log(job.note)
    enc = dict(
        tokenizer=tokenizer,
        modelling=choice.modelling,
        max_length=cfg.max_length,
        max_target_length=cfg.max_target_length,
    )
    logs = (out, state.is_main_process)
    trainer = _make_trainer(cfg, job, args, model, enc, sam, [*callbacks], logs)
    if checkpoint is not None:
        log(f"resuming from {checkpoint}")
    train_output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    result = {
        **_evaluate_and_save(cfg, job, trainer, enc, state, out),
        "resumed_from": checkpoint and checkpoint.name,  # this process's start, if resumed
        "train_runtime_s": train_output.metrics.get("train_runtime"),
        **resolved,
    }
    if state.is_main_process:
        done.write_text(json.dumps(result, indent=2) + "\n")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    state.wait_for_everyone()
    return result


def _resolved(job: TaskJob | MixtureJob, base: str, learning_rate: float, sam) -> dict:
    """What a run's options resolved to (``config.yaml``'s ``resolved``, in ``metrics.json``):
    the modelling and model path, the base optimizer, the learning rate (the given one, or
    ``DEFAULT_LR[base]``), rho, the data (``job.describe()``) and the data note."""
    return {
        "modelling": job.choice.modelling,
        "model_path": job.choice.path,
        "base_optimizer": base,
        "learning_rate": learning_rate,
        "rho": sam.rho if sam else None,
        **job.describe(),
        "data_note": job.note,
    }


def _prepare(cfg: TrainConfig, resume: bool, overwrite: bool, resolved: dict) -> Path | None:
    """The output folder made (or kept, to resume) with its ``config.yaml`` (the options and
    what they resolved to); the checkpoint to resume from, if any."""
    checkpoint = _prepare_output(cfg, resume, overwrite)
    (Path(cfg.output) / "config.yaml").write_text(
        yaml.safe_dump({"options": cfg.to_dict(), "resolved": resolved}, sort_keys=False)
    )
    return checkpoint


def _load_model(cfg: TrainConfig, job: TaskJob | MixtureJob) -> tuple[Any, Any]:
    """The seeded model and its tokenizer; a ``--peft lora`` run's wrapped in adapters
    (before the output folder is made: a model LoRA cannot wrap writes nothing)."""
    set_seed(cfg.seed)
    model, tokenizer = job.load()
    if cfg.peft == "lora":
        model = apply_lora(
            model,
            modelling=job.choice.modelling,
            r=cfg.lora_r,
            alpha=cfg.lora_alpha,
            dropout=cfg.lora_dropout,
            targets=cfg.lora_target_list(),
            **job.lora_options(model),
        )
    return model, tokenizer


def _make_trainer(
    cfg: TrainConfig,
    job: TaskJob | MixtureJob,
    args: Any,
    model: Any,
    enc: dict[str, Any],
    sam: Any,
    callbacks: list[TrainerCallback],
    logs: tuple[Path, bool],
) -> Any:
    """The run's Trainer (with SAM, Flat-LoRA or BAR as configured) on its training and
    validation data, logging to ``logs``' folder (TensorBoard on the main process)."""
    choice, tokenizer = job.choice, enc["tokenizer"]
    out, main = logs
    train_ds = job.train_dataset(enc)
    validation_ds = job.eval_dataset("validation", enc)
    trainer_cls = TRAINERS[choice.modelling, sam is not None]
    kwargs: dict[str, Any] = {"sam_config": sam} if sam else {}
    if job.task_sizes is not None:  # TaskSAM: each batch's examples per task
        kwargs["task_sizes"] = job.task_sizes
    flatness = cfg.lora_flatness()  # Flat-LoRA, BAR
    if flatness:
        trainer_cls = with_lora_flatness(trainer_cls)
        kwargs.update(flatness)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=validation_ds,
        processing_class=tokenizer,
        data_collator=job.collator(tokenizer, model),
        compute_metrics=job.metrics("validation", tokenizer),
        callbacks=[
            JsonlLog(out / "log.jsonl"),
            *([_tensorboard(out / "tensorboard")] if main else []),
            *callbacks,
        ],
        **kwargs,
    )
    if choice.modelling != "causal":
        # a classification head's loss (and T5's) is its micro-batch's mean, which the
        # Trainer must divide by the accumulation steps; it skips that for a model whose
        # forward takes **kwargs, as these do without using them (transformers#47688), and
        # the accumulated gradient would be k times the batch's. Causal LMs take the
        # step's token count instead (their loss_function uses num_items_in_batch).
        trainer.model_accepts_loss_kwargs = False
    if not cfg.progress:  # quiet: no bar, and no log dicts printed in its place
        trainer.remove_callback(PrinterCallback)
    return trainer


def _evaluate_and_save(
    cfg: TrainConfig,
    job: TaskJob | MixtureJob,
    trainer: Any,
    enc: dict[str, Any],
    state: PartialState,
    out: Path,
) -> dict[str, Any]:
    """Score the selected model (on the validation examples, then on the reported ones
    when they are apart), save it to ``out/best``; the scores for ``metrics.json``."""
    tokenizer = enc["tokenizer"]
    # the selected model on the validation examples (its own prefix: not a curve point)
    scores = trainer.evaluate(metric_key_prefix="selected")
    validation_scores = _metrics(scores)
    if job.reported_apart:  # the reported score, on examples never selected on
        trainer.compute_metrics = job.metrics("reported", tokenizer)
        reported_ds = job.eval_dataset("reported", enc)
        scores = trainer.evaluate(reported_ds, metric_key_prefix="reported")
    trainer.save_model(str(out / "best"))
    if state.is_main_process:
        job.save(trainer.model, out / "best")
    return {
        "task": job.name,
        "method": cfg.optimizer,
        "main_metric": job.metric,
        "metrics": _metrics(scores),
        "validation_metrics": validation_scores,
        **job.summary(_metrics(scores), validation_scores),
        "best_checkpoint": trainer.state.best_model_checkpoint
        and Path(trainer.state.best_model_checkpoint).name,
        "global_steps": trainer.state.global_step,
    }


def _metrics(scores: dict[str, float]) -> dict[str, float]:
    """Scores without the Trainer's prefix (``selected_``, ``reported_``) and runtimes."""
    out = {}
    for key, value in scores.items():
        prefix, _, name = key.partition("_")
        if prefix in ("selected", "reported") and name not in RUNTIME_NAMES:
            out[name] = value
    return out


def _silent(*args: Any) -> None:
    """The ``log`` of processes other than the main one."""
