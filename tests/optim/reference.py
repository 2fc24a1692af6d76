"""An independent SAM reference written with torch.func, for the equivalence tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad


def sam_gradient(
    model: nn.Module,
    params: dict,
    loss_of_output,
    batch,
    rho: float,
    adaptive: bool = False,
    eta: float = 0.01,
) -> dict:
    """grad L(w + e) with e = rho g/||g|| (SAM) or rho T^2 g/||T g|| (ASAM), T = |w| + eta."""
    x, y = batch

    def loss(p):
        return loss_of_output(functional_call(model, p, (x,)), y)

    g = grad(loss)(params)
    if adaptive:
        t = {k: params[k].abs() + eta for k in params}
        norm = torch.sqrt(sum(((t[k] * g[k]) ** 2).sum() for k in g))
        e = {k: rho * t[k] ** 2 * g[k] / norm for k in g}
    else:
        norm = torch.sqrt(sum((g[k] ** 2).sum() for k in g))
        e = {k: rho * g[k] / norm for k in g}
    return grad(loss)({k: params[k] + e[k] for k in params})


class RefSGD:
    def __init__(self, lr: float, momentum: float = 0.0):
        self.lr, self.momentum, self.buf = lr, momentum, {}

    def __call__(self, params: dict, g: dict) -> dict:
        out = {}
        for k in params:
            d = g[k]
            if self.momentum:
                d = self.buf[k] = d if k not in self.buf else self.momentum * self.buf[k] + d
            out[k] = params[k] - self.lr * d
        return out


class RefAdamW:
    def __init__(
        self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01
    ):
        self.lr, self.betas, self.eps, self.wd = lr, betas, eps, weight_decay
        self.m, self.v, self.t = {}, {}, 0

    def __call__(self, params: dict, g: dict) -> dict:
        self.t += 1
        b1, b2 = self.betas
        out = {}
        for k in params:
            self.m[k] = b1 * self.m.get(k, 0) + (1 - b1) * g[k]
            self.v[k] = b2 * self.v.get(k, 0) + (1 - b2) * g[k] ** 2
            mhat = self.m[k] / (1 - b1**self.t)
            vhat = self.v[k] / (1 - b2**self.t)
            w = params[k] * (1 - self.lr * self.wd)
            out[k] = w - self.lr * mhat / (vhat.sqrt() + self.eps)
        return out
