"""SAM on LoRA adapters (PEFT): only the adapters (and the new head) move, by SAM's rule."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import functional_call, grad

from samlm import SAM, sam_step
from tests.helpers import tiny_hf

peft = pytest.importorskip("peft", reason="needs the peft extra")


def _lora_model():
    model = tiny_hf("bert")
    config = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS"
    )
    torch.manual_seed(1)  # the adapters' initialisation
    model = peft.get_peft_model(model, config)
    for p in model.parameters():  # B starts at 0: move it, so that A's gradient is not 0
        if p.requires_grad:
            p.data.normal_(0, 0.1, generator=torch.Generator().manual_seed(p.numel()))
    return model.train()


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (8, 6), generator=g)
    return {"input_ids": ids, "labels": (ids[:, 0] > 22).long()}


def test_lora_sam_step_matches_the_reference_and_leaves_the_model_frozen():
    model = _lora_model()
    reference = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(("lora_" in n or "classifier" in n) for n in trainable)
    sam = SAM(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1), 0.1)

    frozen = {n: p.detach() for n, p in reference.named_parameters() if not p.requires_grad}
    params = {n: p.detach().clone() for n, p in reference.named_parameters() if p.requires_grad}
    for step in range(3):
        batch = _batch(step)
        sam_step(sam, lambda b: model(**b).loss, batch)

        def loss(p, batch=batch):
            return functional_call(reference, {**frozen, **p}, (), batch).loss

        g = grad(loss)(params)
        norm = torch.sqrt(sum((v**2).sum() for v in g.values()))
        g_s = grad(loss)({n: params[n] + 0.1 * g[n] / norm for n in params})
        params = {n: params[n] - 0.1 * g_s[n] for n in params}

    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), params[name], rtol=1e-5, atol=1e-6)
            assert not torch.equal(p, before[name])
        else:
            assert torch.equal(p, before[name]), name  # the frozen model, bitwise
    perturbed = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sam.backup_bytes() == perturbed * 4  # SAM's backup: the adapters and the head


def test_sam_trainer_on_a_lora_model_perturbs_and_trains_the_adapters_only(tmp_path):
    from datasets import Dataset
    from transformers import TrainingArguments

    from samlm.training import SAMConfig, SAMTrainer

    model = _lora_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = Dataset.from_dict({k: v.tolist() for k, v in _batch(0).items()})
    trainer = SAMTrainer(
        model=model,
        args=TrainingArguments(
            str(tmp_path), per_device_train_batch_size=4, max_steps=2, report_to=[],
            use_cpu=True, save_strategy="no", disable_tqdm=True, learning_rate=1e-2,
        ),
        train_dataset=data,
        sam_config=SAMConfig(rho=0.1),
    )  # fmt: skip
    trainer.train()
    sam = trainer.sam_optimizer
    held = {id(p) for g in sam.param_groups for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in held}
    assert names == {n for n, p in model.named_parameters() if p.requires_grad}
    assert sam.sam_steps == 2 and sam.backup_bytes() > 0
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != p.requires_grad, name


def test_apply_lora_keeps_peft_s_own_deprecation_warning_from_the_user(tmp_path):
    """peft reads transformers' deprecated ``is_gradient_checkpointing`` on the model it
    wraps; ``apply_lora`` filters that one warning (and only while it wraps)."""
    import warnings

    from samlm.pipeline.adapters import apply_lora, load_lora

    def wrap(fn):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn(tiny_hf("bert"))
        return [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]

    config = peft.LoraConfig(r=2, target_modules=["query"], task_type="SEQ_CLS")

    def raw_model(model):
        return peft.get_peft_model(model, config)

    raw = wrap(raw_model)
    ours = wrap(
        lambda model: apply_lora(
            model, modelling="encoder", r=2, alpha=4.0, dropout=0.0, targets=["query"]
        )
    )
    if not raw:
        pytest.skip("this peft/transformers pair does not warn")
    assert ours == []
    before = list(warnings.filters)
    apply_lora(tiny_hf("bert"), modelling="encoder", r=2, alpha=4.0, dropout=0.0, targets=None)
    assert warnings.filters == before  # the filter held only while peft wrapped
    # loading a saved adapter back (samlm sharpness, resume) wraps the model too
    saved = tmp_path / "adapter"
    wrap(lambda model: raw_model(model).save_pretrained(saved))
    assert wrap(lambda model: load_lora(model, saved)) == []
    assert warnings.filters == before


def test_lora_on_gpt2_conv1d_sets_fan_in_fan_out_itself_and_wraps_as_peft_would():
    """GPT-2's ``Conv1D`` stores its weight (in, out): ``apply_lora`` sets PEFT's
    ``fan_in_fan_out`` for it (PEFT would switch it on with a warning), the same model."""
    import warnings

    from samlm.pipeline.adapters import apply_lora

    def gpt2():
        return tiny_hf("gpt2").eval()

    ids = torch.randint(0, 40, (1, 5), generator=torch.Generator().manual_seed(0))  # no pad id
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(3)
        ours = apply_lora(gpt2(), modelling="encoder", r=2, alpha=4.0, dropout=0.0, targets=None)
    assert not [w for w in caught if "fan_in_fan_out" in str(w.message)]
    assert ours.peft_config["default"].fan_in_fan_out
    torch.manual_seed(3)
    config = peft.LoraConfig(r=2, lora_alpha=4.0, target_modules=["c_attn"], task_type="SEQ_CLS")
    theirs = peft.get_peft_model(gpt2(), config)
    assert theirs.peft_config["default"].fan_in_fan_out  # PEFT flipped it, with its warning
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(ours(input_ids=ids).logits, theirs(input_ids=ids).logits)

    bert = apply_lora(
        tiny_hf("bert"), modelling="encoder", r=2, alpha=4.0, dropout=0.0, targets=None
    )
    assert not bert.peft_config["default"].fan_in_fan_out  # nn.Linear: (out, in)
