"""Same-dropout replay: both passes draw the same masks; the stream is consumed once.
On CUDA (``pytest --device cuda``) the masks come from the GPU's generator, which
``optim/rng.py`` replays."""

from __future__ import annotations

import pytest
import torch

from samlm import SAM, sam_step
from tests.helpers import ce_loss, rng_state, tiny_batch, tiny_mlp

pytestmark = pytest.mark.usefixtures("device")


def _masks(model):
    masks = []
    model[2].register_forward_hook(lambda m, i, o: masks.append(o == 0))
    return masks


def _step(same_dropout):
    torch.manual_seed(7)
    model = tiny_mlp(dropout=0.5)
    model.train()
    masks = _masks(model)
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, same_dropout=same_dropout)
    batch = tiny_batch()
    states = []

    def closure():
        sam.zero_grad()
        loss = ce_loss(model)(batch)
        loss.backward()
        states.append(rng_state())
        return loss

    sam.step(closure)
    return masks, states, rng_state()


def test_replay_gives_identical_masks():
    masks, states, after = _step(same_dropout=True)
    assert len(masks) == 2 and masks[0].any()
    assert torch.equal(masks[0], masks[1])
    assert torch.equal(after, states[0])  # the step consumed the stream once


def test_without_replay_masks_differ():
    masks, _, _ = _step(same_dropout=False)
    assert not torch.equal(masks[0], masks[1])


def test_replay_in_the_helper_per_chunk():
    torch.manual_seed(7)
    model = tiny_mlp(dropout=0.5)
    masks = _masks(model)
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, same_dropout=True)
    sam_step(sam, ce_loss(model), tiny_batch(n=16), m=2)
    assert len(masks) == 4
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[2], masks[3])
    assert not torch.equal(masks[0], masks[2])  # each chunk its own draw
