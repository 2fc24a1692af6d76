"""Distributed options without processes: clear errors, and the bucketing rule."""

from __future__ import annotations

import pytest
import torch

from samlm import SAM
from samlm.optim.comm import _buckets
from samlm.training import SAMConfig

from .model import tiny_model


def _base():
    return torch.optim.SGD(tiny_model().parameters(), lr=0.1)


def test_a_distributed_mode_needs_an_initialised_process_group():
    with pytest.raises(ValueError, match="init_process_group"):
        SAM(_base(), distributed="per_replica")


@pytest.mark.parametrize(
    "make", [lambda: SAM(_base(), distributed="all"), lambda: SAMConfig(distributed_sam="all")]
)
def test_unknown_modes_are_named(make):
    with pytest.raises(ValueError, match=r"distributed(_sam)?='all'.*per_replica, synchronized"):
        make()


def test_buckets_follow_size_and_dtype():
    f32 = [torch.zeros(256) for _ in range(4)]  # 1 KiB each
    assert [len(b) for b in _buckets(f32, 2048)] == [2, 2]
    assert [len(b) for b in _buckets(f32, 10**6)] == [4]
    mixed = [
        torch.zeros(4),
        torch.zeros(4, dtype=torch.float64),
        torch.zeros(4, dtype=torch.float64),
    ]
    assert [len(b) for b in _buckets(mixed, 10**6)] == [1, 2]
    assert [len(b) for b in _buckets([torch.zeros(1000)], 16)] == [1]  # never split a tensor
