"""A Hub name with the Hub out of reach: the cached snapshot at once, or a clear error at
once (huggingface_hub would retry each file for about 30 s first)."""

from __future__ import annotations

import shutil
import socket

import huggingface_hub.constants
import pytest

from samlm.pipeline import hub
from samlm.pipeline.models import load_model, resolve_model
from samlm.tasks import get_task


def _no_network(monkeypatch) -> list[str]:
    """Every host lookup fails (and is recorded); no proxy; offline not asked for."""
    looked_up: list[str] = []

    def fail(host, *args, **kwargs):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    for name in hub.PROXIES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return looked_up


def _cache(tmp_path, monkeypatch, repo_id: str, model_dir) -> str:
    """``model_dir`` laid out as huggingface_hub caches ``repo_id`` at ``main``."""
    cache = tmp_path / "hub"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123abc"
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return str(snapshot)


def test_unreachable_hub_resolves_a_cached_name_to_its_snapshot(
    tmp_path, monkeypatch, tiny_bert_dir
):
    snapshot = _cache(tmp_path, monkeypatch, "someone/tiny-bert", tiny_bert_dir)
    looked_up = _no_network(monkeypatch)
    choice = resolve_model("someone/tiny-bert", "auto", None)
    assert looked_up == ["huggingface.co"]
    assert choice.path == snapshot and choice.config.model_type == "bert"
    model, tokenizer = load_model(choice, get_task("glue/sst2"))
    assert model.config.hidden_size == 16 and tokenizer("a cat")["input_ids"]


def test_unreachable_hub_and_an_uncached_name_fail_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    _no_network(monkeypatch)
    with pytest.raises(ValueError, match=r"huggingface.co\) cannot be reached.*not in the local"):
        resolve_model("someone/not-cached", "auto", None)


def test_offline_setting_is_unreachable_without_a_lookup(monkeypatch):
    looked_up = _no_network(monkeypatch)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert not hub.reachable() and looked_up == []


def test_behind_a_proxy_the_hub_counts_as_reachable_without_a_lookup(monkeypatch):
    looked_up = _no_network(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert hub.reachable() and looked_up == []


def test_a_resolving_host_is_reachable(monkeypatch):
    _no_network(monkeypatch)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [("ok",)])
    assert hub.reachable()
