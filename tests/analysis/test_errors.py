"""Bad arguments raise ValueErrors that name the argument and its value."""

from __future__ import annotations

import re

import pytest
import torch

from samlm.analysis import (
    MeasureOptions,
    hessian_trace,
    landscape_1d,
    landscape_2d,
    measure_run,
    rho_sharpness,
    top_eigenvalue,
)

from .conftest import ce_loss, tiny_batches, tiny_net

QUIET = dict(progress=False)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, b: rho_sharpness(m, ce_loss, b, rho=0.0), "rho=0.0"),
        (lambda m, b: rho_sharpness(m, ce_loss, b, rho=float("nan")), "rho=nan"),
        (lambda m, b: rho_sharpness(m, ce_loss, b, steps=0), "steps=0"),
        (lambda m, b: rho_sharpness(m, ce_loss, b, steps=1.5), "steps=1.5"),
        (lambda m, b: rho_sharpness(m, ce_loss, b, step_size=-1), "step_size=-1"),
        (lambda m, b: rho_sharpness(m, ce_loss, b, m=0), "m=0"),
        (lambda m, b: rho_sharpness(m, ce_loss, b, eta=-0.1), "eta=-0.1"),
        (lambda m, b: rho_sharpness(m, ce_loss, b, random_start="yes"), "random_start='yes'"),
        (lambda m, b: rho_sharpness(m, ce_loss, b, batch_size=0), "batch_size=0"),
        (lambda m, b: top_eigenvalue(m, ce_loss, b, iters=0), "iters=0"),
        (lambda m, b: top_eigenvalue(m, ce_loss, b, tol=0), "tol=0"),
        (lambda m, b: hessian_trace(m, ce_loss, b, probes=True), "probes=True"),
        (lambda m, b: landscape_1d(m, ce_loss, b, points=0), "points=0"),
        (lambda m, b: landscape_2d(m, ce_loss, b, span=-1.0), "span=-1.0"),
        (lambda m, b: rho_sharpness(m, ce_loss, []), "batches is empty"),
        (lambda m, b: rho_sharpness(m, ce_loss, b[0][0]), "not a single batch"),
        (lambda m, b: rho_sharpness(m, "loss", b), "loss_fn='loss'"),
        (lambda m, b: rho_sharpness(m, lambda mm, bb: mm(bb[0]), b), "scalar tensor"),
        (
            lambda m, b: rho_sharpness(m, ce_loss, b, params=[torch.nn.Parameter(torch.ones(1))]),
            "params must be parameters of the model",
        ),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(tiny_net(), tiny_batches())


def test_a_frozen_model_has_nothing_to_measure():
    model = tiny_net().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        rho_sharpness(model, ce_loss, tiny_batches(), **QUIET)


def test_bad_measure_options():
    with pytest.raises(ValueError, match="grid=-1"):
        MeasureOptions(grid=-1)
    with pytest.raises(ValueError, match="adaptive_rho=0"):
        MeasureOptions(adaptive_rho=0)


@pytest.mark.parametrize(
    ("device", "message"),
    [("tpu", "device='tpu' is not a device"), ("cuda", "this machine has no cuda device")],
)
def test_measure_run_refuses_a_device_it_cannot_use(tmp_path, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=re.escape(message)):
        measure_run(tmp_path, device=device)


def test_measure_run_needs_a_run_folder(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        measure_run(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no config\.yaml"):
        measure_run(tmp_path)
    (tmp_path / "config.yaml").write_text("options: {task: glue/sst2}\nresolved: {}\n")
    with pytest.raises(ValueError, match="no best/ model"):
        measure_run(tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        measure_run(tmp_path, rhoo=0.1)
    with pytest.raises(ValueError, match="samples=0"):
        measure_run(tmp_path, samples=0)
