"""The overhead of ``samlm compare --backend ray``: one grid on both backends, side by side.

    python bench/ray_backend.py --data-dir ../shared/data [--seeds 3] [--cpus 2] [--order ray,local]

Runs the default preset's grid (SST-2 at 250 examples, baseline / SAM / SAM(0.25), at the
evidence grid's recorded settings; ``--seeds`` of them) twice in fresh folders: on the
local backend (``--cpus`` worker processes, one thread each) and on a Ray instance this
script starts with ``--cpus`` CPUs (one CPU per cell), and prints each wall time, the
ratio Ray / local (expected near 1.0: Ray's start and scheduling over the same work) and
whether the two stores hold the same scores (they should: same cells, same threads).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import ray

from samlm.compare import PRESETS, GridSpec, compare
from samlm.compare.backends import LocalBackend, RayBackend
from samlm.compare.grid import with_recorded_settings


def grid(data_dir: str, seeds: int) -> GridSpec:
    options = {**PRESETS["default"], "seeds": seeds, "data_dir": data_dir}
    return GridSpec(**with_recorded_settings(options))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seeds", type=int, default=PRESETS["default"].get("seeds", 3))
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument(
        "--order",
        choices=["local,ray", "ray,local"],
        default="local,ray",
        help="which backend runs first (run both orders on a noisy machine)",
    )
    args = parser.parse_args()
    spec = grid(str(Path(args.data_dir).absolute()), args.seeds)
    cells = len(spec.cells())
    runs: dict[str, tuple[dict, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.order.split(","):
            start = time.perf_counter()  # Ray's start counts: the user waits for it too
            if name == "ray":
                ray.init(  # an instance of its own, never a cluster running here
                    address="local",
                    num_cpus=args.cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                )
                backend = RayBackend(cpus_per_cell=1)
            else:
                backend = LocalBackend(args.cpus)
            records = compare(spec, Path(tmp) / name, backend=backend)
            if name == "ray":
                ray.shutdown()
            runs[name] = records, time.perf_counter() - start
    (local, local_s), (on_ray, ray_s) = runs["local"], runs["ray"]
    same = all(
        json.dumps(local[k].get("score")) == json.dumps(on_ray[k].get("score")) for k in local
    )
    ok = sum(r["status"] == "ok" for r in on_ray.values())
    print(f"order: {args.order}")
    print(
        f"grid: {cells} cells ({', '.join(spec.tasks)} at {spec.sizes}, {spec.methods}, "
        f"{args.seeds} seeds), {args.cpus} CPUs, {ok} ok on Ray"
    )
    print(f"{'backend':<8} {'wall time':>10}")
    print(f"{'local':<8} {local_s:>9.1f}s")
    print(f"{'ray':<8} {ray_s:>9.1f}s")
    print(f"ray / local: {ray_s / local_s:.3f}")
    print(f"same scores on both backends: {same}")


if __name__ == "__main__":
    main()
