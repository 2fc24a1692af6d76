"""DDP with SAM on 2 gloo processes: per-replica (no all-reduce in the first pass,
identical weights, equal to single-process m-sharpness with m = world size) and
synchronized (one bucketed all-reduce, equal to single-process SAM on the whole batch;
GSAM, LookSAM, AE-SAM, Eigen-SAM and TaskSAM too, AE-SAM deciding alike on every rank,
Eigen-SAM averaging its Hessian-vector products like the ascent gradients, TaskSAM each
task's ascent gradient before its norm); LookSAM resumes
bitwise from sharded and full checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from samlm import load_checkpoint, sam_step, save_checkpoint
from samlm.optim.variants import AESAM, GSAM, EigenSAM, LookSAM, TaskSAM

from .harness import spawn
from .model import batches, loss_fn, sam, shard, tiny_model

STEPS, BATCH = 3, 8
CASES = {
    # name: (SAM mode, ascent_fraction, accumulation_steps, interval, m)
    "per_replica": ("per_replica", 0.5, 1, 1, 1),
    "per_replica_accumulated": ("per_replica", 1.0, 2, 2, 1),
    "per_replica_m": ("per_replica", 0.5, 1, 1, 2),
    "synchronized": ("synchronized", 1.0, 1, 1, 1),
    "gsam_synchronized": ("synchronized", 1.0, 1, 1, 1),
    "looksam_synchronized": ("synchronized", 1.0, 1, 1, 1),
    "aesam_synchronized": ("synchronized", 1.0, 2, 1, 1),
    "eigensam_synchronized": ("synchronized", 1.0, 1, 1, 1),
    "tasksam_synchronized": ("synchronized", 1.0, 1, 1, 1),
}
TASKS = (1, 3)  # TaskSAM's case: each replica's 4 examples, 1 of task 0 then 3 of task 1


def _variant(name: str):
    """The variant a case runs (a fresh object: it holds state)."""
    if name.startswith("gsam"):
        return GSAM(alpha=0.5)
    if name.startswith("looksam"):
        return LookSAM(k=2, alpha=0.7)
    if name.startswith("aesam"):  # on these batches: SAM, plain, SAM
        return AESAM(delta=0.5, lambda_1=1.0, lambda_2=1.0)
    if name.startswith("eigensam"):  # refreshes at steps 1 and 2
        return EigenSAM(alpha=0.5, refresh=1, iterations=3)
    if name.startswith("tasksam"):
        return TaskSAM()
    return None


def _tasks(name: str) -> dict:
    return {"task_sizes": TASKS} if name.startswith("tasksam") else {}


def _worker(rank: int, world: int) -> dict:
    results = {}
    for name, (mode, fraction, accumulation, interval, m) in CASES.items():
        model = DDP(tiny_model())
        opt = sam(model, distributed=mode, interval=interval, variant=_variant(name))
        hooks: list[bool] = []  # is_perturbed at each bucket all-reduce of DDP
        all_reduce = dist.all_reduce

        def hook(state, bucket, opt=opt, hooks=hooks, all_reduce=all_reduce):
            hooks.append(opt.is_perturbed)
            grad = bucket.buffer().div_(world)
            future = all_reduce(grad, async_op=True).get_future()
            return future.then(lambda f: f.value()[0])

        model.register_comm_hook(None, hook)
        ours = []  # all-reduce calls outside DDP's hooks (the synchronized ascent, the flag)

        def counting(tensor, *args, ours=ours, all_reduce=all_reduce, **kwargs):
            ours.append(tensor.numel())
            return all_reduce(tensor, *args, **kwargs)

        dist.all_reduce = counting
        steps = []
        try:
            for batch in batches(STEPS, BATCH):
                hooks.clear()
                ours.clear()
                sam_step(
                    opt,
                    loss_fn(model),
                    shard(batch, rank, world),
                    ascent_fraction=fraction,
                    accumulation_steps=accumulation,
                    m=m,
                    model=model,
                    **_tasks(name),
                )
                weights = {k: v.clone() for k, v in model.module.state_dict().items()}
                steps.append((list(hooks), list(ours), opt.last_stats.sam_step, weights))
        finally:
            dist.all_reduce = all_reduce
        results[name] = steps
    # a non-finite ascent gradient on one replica only: every replica skips the step
    model = DDP(tiny_model())
    opt = sam(model, distributed="per_replica")
    local = shard(batches(1, BATCH)[0], rank, world)
    if rank == 1:
        local["x"][0, 0] = float("nan")
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    sam_step(opt, loss_fn(model), local, model=model)
    after = model.module.state_dict()
    results["skip"] = (opt.skipped_steps, all(torch.equal(before[k], after[k]) for k in before))
    # a DDP model needs a distributed mode
    model = DDP(tiny_model())
    with pytest.raises(ValueError, match="per_replica"):
        sam_step(sam(model), loss_fn(model), shard(batches(1, BATCH)[0], rank, world), model=model)
    # AE-SAM: per-replica decisions are refused; an ascent under no_sync (each replica's own
    # gradient) makes every rank raise instead of deciding apart
    with pytest.raises(ValueError, match="distributed='per_replica'"):
        sam(model, distributed="per_replica", variant=AESAM())
    opt = sam(model, distributed="synchronized", variant=AESAM())
    with model.no_sync():
        loss_fn(model)(shard(batches(1, BATCH)[0], rank, world)).backward()
    with pytest.raises(RuntimeError, match="gradient norms or decisions differ"):
        opt.perturb()
    results["aesam_no_sync_raised"] = not opt.is_perturbed
    return results


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return spawn(_worker, out)


def _reference(name: str):
    mode, fraction, _, interval, m = CASES[name]
    model = tiny_model()
    opt = sam(model, interval=interval, variant=_variant(name))
    if mode == "per_replica":  # m-sharpness over the replicas (and over m chunks in each)
        m *= 2
    # TaskSAM: the replicas' shards as two micro-batches, each task's unit spanning both
    shards = {"accumulation_steps": 2} if name.startswith("tasksam") else {}
    out = []
    for batch in batches(STEPS, BATCH):
        sam_step(
            opt, loss_fn(model), batch, ascent_fraction=fraction, m=m, **shards, **_tasks(name)
        )
        out.append({k: v.clone() for k, v in model.state_dict().items()})
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_ddp_equals_the_single_process_rule(ddp_results, name):
    reference = _reference(name)
    for rank in ddp_results:
        for (*_, weights), ref in zip(rank[name], reference, strict=True):
            for key, w in weights.items():
                torch.testing.assert_close(w, ref[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_ddp_replicas_end_every_step_with_identical_weights(ddp_results, name):
    zero, one = ddp_results
    for (*_, w0), (*_, w1) in zip(zero[name], one[name], strict=True):
        for key in w0:
            assert torch.equal(w0[key], w1[key]), key


@pytest.mark.parametrize("name", ["per_replica", "per_replica_accumulated", "per_replica_m"])
def test_per_replica_first_pass_sends_no_gradient(ddp_results, name):
    for rank in ddp_results:
        sam_steps = 0
        for hooks, ours, is_sam, _ in rank[name]:
            assert hooks, "DDP all-reduced nothing: the second pass must synchronise"
            if is_sam:
                sam_steps += 1
                assert all(hooks), "a gradient bucket was all-reduced during the first pass"
                assert ours == [1] * CASES[name][4]  # a one-element skip flag per unit
            else:
                assert ours == []
        assert sam_steps >= 1


def test_a_non_finite_replica_makes_every_replica_skip(ddp_results):
    assert [rank["skip"] for rank in ddp_results] == [(1, True), (1, True)]


def test_synchronized_ascent_is_one_bucketed_all_reduce(ddp_results):
    n_params = sum(w.numel() for w in ddp_results[0]["synchronized"][0][3].values())
    for rank in ddp_results:
        for hooks, ours, is_sam, _ in rank["synchronized"]:
            assert is_sam and all(hooks)
            assert ours == [n_params]  # every ascent gradient in one call


def test_aesam_ranks_decide_alike_from_ddps_averaged_gradient(ddp_results):
    kinds = [[is_sam for _, _, is_sam, _ in rank["aesam_synchronized"]] for rank in ddp_results]
    assert kinds[0] == kinds[1] == [True, False, True]  # both branches, on both ranks
    for rank in ddp_results:
        for hooks, ours, is_sam, _ in rank["aesam_synchronized"]:
            assert ours == [4]  # no gradient all-reduce of ours: the agreement check only
            assert hooks and not hooks[0]  # DDP averaged the first pass itself
            assert any(hooks) == is_sam  # and the second pass, on SAM steps only
        assert rank["aesam_no_sync_raised"]


def _resume_worker(rank: int, world: int, out: str) -> dict:
    """LookSAM (k = 3) saved after step 1 and resumed: step 2 steps with the checkpoint's
    g_v (from step 0), step 3 is a SAM step."""
    data = batches(4, BATCH)

    def make():
        model = DDP(tiny_model())
        return model, sam(model, distributed="synchronized", variant=LookSAM(k=3, alpha=0.7))

    def train(model, opt, steps):
        for batch in steps:
            sam_step(opt, loss_fn(model), shard(batch, rank, world), model=model)

    results = {}
    for kind in ("sharded", "full", "uninterrupted"):
        model, opt = make()
        if kind != "uninterrupted":
            train(model, opt, data[:2])
            save_checkpoint(f"{out}/{kind}", model, opt, full=kind == "full")
            model, opt = make()
            load_checkpoint(f"{out}/{kind}", model, opt)
            assert len(opt.engine.variant.g_v) == 4
        train(model, opt, data[2:] if kind != "uninterrupted" else data)
        results[kind] = {k: v.clone() for k, v in model.module.state_dict().items()}
    return results


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_resume")
    return spawn(_resume_worker, out, str(out))


@pytest.mark.parametrize("kind", ["sharded", "full"])
def test_ddp_looksam_resumes_bitwise_from_a_checkpoint(resumed, kind):
    for rank in resumed:
        for name, w in rank[kind].items():
            assert torch.equal(w, rank["uninterrupted"][name]), name


def test_eigensam_averages_its_products_like_the_ascent_gradients(ddp_results):
    """A refresh step all-reduces each of its 3 products whole, as the ascent gradient:
    the replicas' mean H v is the whole batch's (the reference above agrees)."""
    n_params = sum(w.numel() for w in ddp_results[0]["synchronized"][0][3].values())
    for rank in ddp_results:
        calls = [ours for _, ours, _, _ in rank["eigensam_synchronized"]]
        assert calls == [[n_params], [n_params] * 4, [n_params] * 4]


def test_tasksam_averages_each_tasks_ascent_gradient_before_its_norm(ddp_results):
    """One all-reduce of the whole ascent gradient per task (averaged over the replicas,
    then normed: the reference above is single-process TaskSAM on both shards); DDP's
    buckets once, in the last task's second pass."""
    n_params = sum(w.numel() for w in ddp_results[0]["synchronized"][0][3].values())
    for rank in ddp_results:
        for hooks, ours, is_sam, _ in rank["tasksam_synchronized"]:
            assert is_sam and ours == [n_params] * len(TASKS)
            assert hooks and all(hooks)
