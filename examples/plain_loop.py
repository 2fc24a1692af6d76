"""samlm in a plain PyTorch training loop: the three ways to take a SAM step.

A tiny synthetic 3-class problem (no downloads, a few seconds on CPU) is trained
three times from the same start, once with each API:

(a) ``SAM.step(closure)``: the closure zeroes the gradients, runs forward and
    backward and returns the loss; SAM calls it at ``w`` and again at ``w + e``.
    The optimizer is built on ``sam_param_groups(model)``, which leaves biases and
    LayerNorm weights out of the perturbation and out of weight decay.
(b) the two-phase API: ``loss.backward()``, ``opt.perturb()``, a second
    forward-backward at ``w + e``, ``opt.step()`` (which restores ``w`` and steps).
(c) ``sam_step(opt, loss_fn, batch, ascent_fraction=0.25)``: the ascent gradient
    on the first quarter of the batch, the SAM gradient on all of it.

Run: ``python examples/plain_loop.py``
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from samlm import SAM, sam_param_groups, sam_step

EPOCHS = 12
BATCH = 64


def make_data(n: int = 1024, dim: int = 16, classes: int = 3) -> tuple[Tensor, Tensor]:
    """Gaussian inputs labelled by a fixed random two-layer teacher."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=g)
    teacher = torch.randn(dim, 32, generator=g), torch.randn(32, classes, generator=g)
    y = (torch.tanh(x @ teacher[0]) @ teacher[1]).argmax(dim=1)
    return x, y


def make_model(dim: int = 16, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)  # the same initial weights for every run
    return nn.Sequential(nn.Linear(dim, 64), nn.LayerNorm(64), nn.GELU(), nn.Linear(64, classes))


def batches(x: Tensor, y: Tensor, epoch: int) -> list[tuple[Tensor, Tensor]]:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
    return [(x[i], y[i]) for i in order.split(BATCH)]


def train(name: str, api: str) -> None:
    x, y = make_data()
    model = make_model()

    if api == "closure":
        # (a) groups from sam_param_groups: biases and LayerNorm weights are not perturbed
        # and get no weight decay; everything else is perturbed and decayed.
        groups = sam_param_groups(model, weight_decay=0.01)
        opt = SAM(torch.optim.AdamW(groups, lr=3e-3), rho=0.05)
    else:
        opt = SAM(torch.optim.AdamW(model.parameters(), lr=3e-3), rho=0.05)

    print(f"\n({name})")
    for epoch in range(EPOCHS):
        total, steps = 0.0, 0
        for xb, yb in batches(x, y, epoch):
            if api == "closure":

                def closure(xb: Tensor = xb, yb: Tensor = yb) -> Tensor:
                    opt.zero_grad()
                    loss = F.cross_entropy(model(xb), yb)
                    loss.backward()
                    return loss

                loss = opt.step(closure)  # L(w); the closure ran twice

            elif api == "two-phase":
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()  # g = grad L(w)
                if opt.perturb(loss=loss.detach()):  # w <- w + e; False on a plain step
                    opt.zero_grad()
                    loss_perturbed = F.cross_entropy(model(xb), yb)
                    loss_perturbed.backward()  # grad L(w + e), left in p.grad
                    # Optional: step() restores too, but only restore(loss=...) records
                    # L(w + e) (and so the sharpness) in last_stats.
                    opt.restore(loss=loss_perturbed)
                opt.step()  # restore w if still perturbed, then AdamW with grad L(w + e)

            else:

                def loss_fn(batch: tuple[Tensor, Tensor]) -> Tensor:
                    return F.cross_entropy(model(batch[0]), batch[1])

                # L(w) on the ascent quarter; zeroes the gradients itself.
                loss = sam_step(opt, loss_fn, (xb, yb), ascent_fraction=0.25)

            total, steps = total + loss.item(), steps + 1
        if epoch % 3 == 0 or epoch == EPOCHS - 1:
            print(f"  epoch {epoch:2d}  mean loss {total / steps:.4f}")

    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    print(f"  train accuracy {accuracy:.3f}")
    stats = opt.last_stats.as_dict()
    print("  last step: " + ", ".join(f"{k}={v:.4g}" for k, v in stats.items()))


def main() -> None:
    train("a: SAM.step(closure), sam_param_groups", "closure")
    train("b: two-phase: backward, perturb, backward, step", "two-phase")
    train("c: sam_step(..., ascent_fraction=0.25)", "quarter")


if __name__ == "__main__":
    main()
