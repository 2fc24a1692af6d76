"""Communication per optimizer step of distributed SAM, relative to the base optimizer.

    python bench/distributed.py            # starts itself under torchrun, 2 CPU processes

A tiny BERT (2 layers, hidden 64) on random tokens, batch 8 per process, AdamW, gloo.
Counted per step: DDP's gradient buckets (a communication hook), FSDP2's all-gathers
and reduce-scatters, and every all-reduce samlm issues itself (the per-replica skip
flag, the synchronized ascent buckets, the sharded norms). Bytes are the collective's
buffer size on one rank. "first pass" is what is sent before the weights are perturbed.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP
from transformers import BertConfig, BertForSequenceClassification

from samlm import SAM, sam_step

STEPS, WARMUP, BATCH, LENGTH = 6, 2, 8, 32
MODES = [  # engine, optimizer (None: the base optimizer alone)
    ("ddp", None),
    ("ddp", "per_replica"),
    ("ddp", "synchronized"),
    ("fsdp", None),
    ("fsdp", "synchronized"),
]


class Meter:
    """Bytes and calls of every collective, by phase of the step."""

    def __init__(self) -> None:
        self.phase = "first"
        self.bytes: dict[str, int] = {}
        self.calls = 0

    def add(self, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        self.bytes[self.phase] = self.bytes.get(self.phase, 0) + size
        self.calls += 1


METER = Meter()


def _count(name: str, buffer: str) -> None:
    """Wrap ``dist.<name>`` so that every call adds its argument ``buffer`` to the meter."""
    original = getattr(dist, name)
    signature = inspect.signature(original)

    def wrapper(*args, **kwargs):
        METER.add(signature.bind(*args, **kwargs).arguments[buffer])
        return original(*args, **kwargs)

    wrapper.original = original
    setattr(dist, name, wrapper)


def _model(engine: str) -> nn.Module:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=LENGTH,
    )
    model = BertForSequenceClassification(config)
    if engine == "ddp":
        with warnings.catch_warnings():  # broadcast_buffers' deprecation notice
            warnings.simplefilter("ignore", FutureWarning)
            ddp = DDP(model, broadcast_buffers=False)  # count gradients, not buffers
        all_reduce = dist.all_reduce.original  # uncounted: the hook counts

        def hook(state, bucket):
            METER.add(bucket.buffer())
            future = all_reduce(bucket.buffer().div_(dist.get_world_size()), async_op=True)
            return future.get_future().then(lambda f: f.value()[0])

        ddp.register_comm_hook(None, hook)
        return ddp
    for layer in model.bert.encoder.layer:
        fully_shard(layer)
    fully_shard(model)
    return model


def _run(engine: str, mode: str | None) -> tuple[dict[str, float], float, int]:
    model = _model(engine)
    base = torch.optim.AdamW(model.parameters(), lr=1e-4)
    opt = SAM(base, rho=0.05, distributed=mode) if mode else base
    if mode:  # phases: the first pass ends when the engine's perturb() returns
        perturb = opt.engine.perturb

        def marked(*args, **kwargs):
            done = perturb(*args, **kwargs)
            METER.phase = "second"
            return done

        opt.engine.perturb = marked  # the step engine calls its own perturb
    g = torch.Generator().manual_seed(dist.get_rank())

    def loss_fn(batch):
        return model(**batch).loss

    elapsed = 0.0
    for step in range(WARMUP + STEPS):
        batch = {
            "input_ids": torch.randint(0, 1000, (BATCH, LENGTH), generator=g),
            "labels": torch.randint(0, 2, (BATCH,), generator=g),
        }
        if step == WARMUP:
            METER.bytes, METER.calls = {}, 0
        METER.phase = "first" if mode else "second"
        start = time.perf_counter()
        if mode:
            sam_step(opt, loss_fn, batch, model=model)
        else:
            opt.zero_grad(set_to_none=True)
            loss_fn(batch).backward()
            opt.step()
        elapsed += time.perf_counter() - start if step >= WARMUP else 0.0
    per_step = {k: v / STEPS for k, v in METER.bytes.items()}
    return per_step, elapsed / STEPS, METER.calls // STEPS


def main() -> None:
    dist.init_process_group("gloo")
    _count("all_reduce", "tensor")
    _count("all_gather_single", "output_tensor")
    _count("reduce_scatter_single", "input")
    rows = []
    for engine, mode in MODES:
        rows.append((engine, mode, *_run(engine, mode)))
    if dist.get_rank() == 0:
        print(
            f"{'engine':<6} {'optimizer':<18} {'calls':>5} {'KiB/step':>9} "
            f"{'first pass':>10} {'x base':>7} {'time x base':>11}"
        )
        base = {}
        for engine, mode, volume, seconds, calls in rows:
            total = sum(volume.values())
            if mode is None:
                base[engine] = (total, seconds)
            first = volume.get("first", 0)
            label = f"SAM {mode}" if mode else "AdamW (baseline)"
            print(
                f"{engine:<6} {label:<18} {calls:>5} {total / 1024:>9.1f} "
                f"{first:>9.0f}B {total / base[engine][0]:>7.3f} "
                f"{seconds / base[engine][1]:>11.2f}"
            )
    dist.destroy_process_group()


if __name__ == "__main__":
    if "RANK" in os.environ:
        main()
    else:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node", "2", __file__]
        sys.exit(subprocess.call(command, env=env))
