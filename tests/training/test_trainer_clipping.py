"""SAMTrainer clips the direction each variant applies, on every step: with SGD at a
learning rate of 1 and a constant schedule, ``w_t - w_{t+1}`` is the clipped gradient,
so no step may move the weights farther than ``max_grad_norm``."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from samlm.training import SAMConfig, SAMTrainer
from tests.training.test_trainer import _args, tiny_bert, toy_dataset

CLIP = 0.01  # far below the tiny model's gradient norms: every step is clipped


class _Moves(TrainerCallback):
    """Records ||w_{t+1} - w_t|| over every trained weight, and each step's kind."""

    def __init__(self, model, trainer_box):
        self.model, self.box = model, trainer_box
        self.norms, self.kinds = [], []
        self._before = self._weights()

    def _weights(self):
        return [p.detach().clone() for p in self.model.parameters() if p.requires_grad]

    def on_step_end(self, args, state, control, **kwargs):
        after = self._weights()
        moved = torch.stack(
            [(a - b).pow(2).sum() for a, b in zip(after, self._before, strict=True)]
        ).sum()
        self.norms.append(moved.sqrt().item())
        self.kinds.append(self.box[0].sam_optimizer.last_stats.sam_step)
        self._before = after


@pytest.mark.parametrize(
    "sam",
    [
        {"variant": "looksam", "looksam_k": 2, "alpha": 1.0},
        {"variant": "gsam", "alpha": 0.5},
        {"variant": "aesam"},
        {},
    ],
    ids=["looksam", "gsam", "aesam", "sam"],
)
def test_every_step_moves_at_most_max_grad_norm(tmp_path, sam):
    model = tiny_bert()
    box = []
    moves = _Moves(model, box)
    trainer = SAMTrainer(
        model=model,
        args=_args(
            tmp_path,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
            max_grad_norm=CLIP,
            max_steps=6,
        ),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(**sam),
        callbacks=[moves],
    )
    box.append(trainer)
    trainer.train()
    assert len(moves.norms) == 6
    if sam.get("variant") == "looksam":
        assert moves.kinds == [True, False] * 3  # reuse steps are covered
    for step, norm in enumerate(moves.norms):
        assert norm == pytest.approx(CLIP, rel=1e-4), (step, moves.kinds[step], norm)
