"""The training loss on a sample, ``L(w) = sum_b (n_b / N) L_b(w)``, accumulated over
mini-batches ``b`` of ``n_b`` examples (``N = sum_b n_b``), with its gradient and
Hessian-vector products; the parameters ``w`` are the model's trainable ones."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..optim.batching import batch_size as _batch_size
from ..optim.batching import slice_batch
from ..optim.validation import optional_positive_int, positive_int
from .vectors import Vector, zeros_like

LossFn = Callable[[nn.Module, Any], Tensor]
R = TypeVar("R")


def hf_loss(model: nn.Module, batch: Mapping[str, Any]) -> Tensor:
    """``L_b = model(**batch).loss``: the mean loss a Hugging Face model computes when the
    batch holds its labels."""
    loss = getattr(model(**batch), "loss", None)
    if loss is None:
        raise ValueError(
            "the model's output has no .loss: give the batch its labels, or pass your own "
            "loss_fn(model, batch)"
        )
    return loss


def to_device(batch: Any, device: torch.device) -> Any:
    """The batch with every tensor (in mappings, lists and tuples too) on ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return type(batch)({k: to_device(v, device) for k, v in batch.items()})
    if isinstance(batch, list | tuple):
        items = [to_device(v, device) for v in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)
    return batch


def _size(batch: Any) -> int | None:
    """Examples in the batch (the first dimension of its tensors), None when unknown."""
    try:
        return _batch_size(batch)
    except (TypeError, ValueError):
        return None


def split(batch: Any, size: int) -> list[Any]:
    """Contiguous slices of at most ``size`` examples (the last may be smaller)."""
    n = _size(batch)
    if n is None or n <= size:
        return [batch]
    return [slice_batch(batch, i, min(i + size, n)) for i in range(0, n, size)]


class Objective:
    """``L(w)`` of ``loss_fn(model, batch)`` (a mean loss) over ``batches``.

    ``batches`` (any iterable, materialised once) are re-split into mini-batches of at
    most ``batch_size`` examples, which bounds memory; a batch's weight is its number of
    examples (1 when its tensors have no common first dimension). Gradients come from
    ``torch.autograd.grad``, so ``p.grad`` is never touched.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batches: Iterable[Any],
        *,
        batch_size: int | None = None,
        params: Sequence[Tensor] | None = None,
    ) -> None:
        optional_positive_int("batch_size", batch_size)
        if not callable(loss_fn):
            raise ValueError(f"loss_fn={loss_fn!r} must be callable as loss_fn(model, batch)")
        if isinstance(batches, Tensor | Mapping):
            raise ValueError("batches must be an iterable of batches, not a single batch")
        self.model = model
        self.loss_fn = loss_fn
        self.params = list(params) if params is not None else list(_trainable(model))
        if not self.params:
            raise ValueError("the model has no trainable parameters (requires_grad=True)")
        owned = {id(p) for p in model.parameters()}
        if any(id(p) not in owned for p in self.params):
            raise ValueError("params must be parameters of the model")
        self.device = self.params[0].device
        self.batches = [mb for b in batches for mb in (split(b, batch_size) if batch_size else [b])]
        if not self.batches:
            raise ValueError("batches is empty: give at least one batch")
        sizes = [_size(b) or 1 for b in self.batches]
        self.examples = sum(sizes)
        self.weights = [s / self.examples for s in sizes]

    @property
    def passes(self) -> int:
        """Mini-batches per pass over the sample (the unit of the progress bars)."""
        return len(self.batches)

    def _loss(self, batch: Any) -> Tensor:
        loss = self.loss_fn(self.model, to_device(batch, self.device))
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a scalar tensor (a mean loss), got {shape}")
        return loss.reshape(())

    def loss(self, bar: Any = None) -> float:
        """``L(w)`` (no gradient)."""
        total = 0.0
        with torch.no_grad():
            for batch, weight in zip(self.batches, self.weights, strict=True):
                total += weight * float(self._loss(batch).double())
                _tick(bar)
        return total

    def loss_and_grad(self, bar: Any = None) -> tuple[float, Vector]:
        """``(L(w), grad L(w))``, the gradient in fp32."""
        total, grad = 0.0, zeros_like(self.params)
        with torch.enable_grad():
            for batch, weight in zip(self.batches, self.weights, strict=True):
                loss = self._loss(batch)
                parts = torch.autograd.grad(loss, self.params, allow_unused=True)
                for acc, g in zip(grad, parts, strict=True):
                    if g is not None:
                        acc.add_(g.float(), alpha=weight)
                total += weight * float(loss.detach().double())
                _tick(bar)
        return total, grad

    def hvp(self, v: Sequence[Tensor], bar: Any = None) -> Vector:
        """``H v = grad <grad L(w), v>`` by double backward, in fp32. Attention runs on
        PyTorch's math kernel, the one with a second derivative."""
        out = zeros_like(self.params)
        with torch.enable_grad(), sdpa_kernel([SDPBackend.MATH]):
            for batch, weight in zip(self.batches, self.weights, strict=True):
                loss = self._loss(batch)
                grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
                terms = [
                    (g * vi.to(g.dtype)).sum()
                    for g, vi in zip(grads, v, strict=True)
                    if g is not None and g.requires_grad
                ]
                if terms:
                    parts = torch.autograd.grad(
                        torch.stack(terms).sum(), self.params, allow_unused=True
                    )
                    for acc, h in zip(out, parts, strict=True):
                        if h is not None:
                            acc.add_(h.float(), alpha=weight)
                _tick(bar)
        return out

    def chunks(self, m: int) -> list[Objective]:
        """The sample as chunks of ``m`` consecutive examples of each mini-batch (the last
        chunk of a mini-batch may be smaller), each an objective of its own; chunk ``c``
        has weight ``n_c / N`` in the whole."""
        positive_int("m", m)
        out = []
        for batch in self.batches:
            for chunk in split(batch, m):
                out.append(Objective(self.model, self.loss_fn, [chunk], params=self.params))
        return out


def _trainable(model: nn.Module) -> Iterable[Tensor]:
    return (p for p in model.parameters() if p.requires_grad)


def _tick(bar: Any) -> None:
    if bar is not None:
        bar.update(1)


def measure(core: Callable[..., R]) -> Callable[..., R]:
    """A measure ``core(objective, **options)`` as it is called: on an :class:`Objective`
    (``measure(objective, **options)``) or on what makes one
    (``measure(model, loss_fn, batches, *, batch_size=None, params=None, **options)``)."""

    @functools.wraps(core)
    def on_sample(
        model: nn.Module | Objective,
        loss_fn: LossFn | None = None,
        batches: Iterable[Any] | None = None,
        *,
        batch_size: int | None = None,
        params: Sequence[Tensor] | None = None,
        **options: Any,
    ) -> R:
        if not isinstance(model, Objective):
            objective = Objective(model, loss_fn, batches, batch_size=batch_size, params=params)
        elif loss_fn is None and batches is None and batch_size is None and params is None:
            objective = model
        else:
            raise ValueError("give an Objective alone, or model, loss_fn and batches")
        return core(objective, **options)

    own = list(inspect.signature(core).parameters.values())[1:]
    ours = list(inspect.signature(on_sample, follow_wrapped=False).parameters.values())[:5]
    on_sample.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*ours[:3], *own, *ours[3:]], return_annotation=inspect.signature(core).return_annotation
    )
    return on_sample
