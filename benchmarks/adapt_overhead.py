"""Training-step time of each domain adaptation method against source-only, on the same batches.

Usage: FEWSHOT_DATA=../shared/data python benchmarks/adapt_overhead.py [--steps 60] [--shift mnist mnist-m]

The digit network (Ganin et al.'s LeNet) on a digits ``uda`` cell, 64 source and 64 target images per step.
Every method must forward the target batch; the reference for its overhead is therefore a step of the
same wrapper with a zero adaptation loss (``forwarded``: source-only plus the target batch's forward and
backward). ``overhead`` is each method's step time over that reference, minus one (goal: at most 0.30).
Steps alternate between the variants in rounds, so drifts in machine load fall on all alike; the figure
is the median over rounds. AutoDIAL, which inserts alignment layers into a network without batch norm
and replaces the batch norm of one that has it, is also timed on the batch-norm LeNet against that
network's reference; the goal is judged there (its layers against the batch norm they replace), and
``batch_norm_cost`` shows what normalisation layers cost the plain network.

How fast the step could be: each variant's floating-point operations per step are counted by torch's
``FlopCounterMode`` (forward and backward: about 21 MFLOP per image for Ganin's LeNet), and the machine's
limit is the rate of a large single-precision matrix product on the same threads, measured in the same run
(the kernel that convolutions are lowered to, at its most efficient). ``fraction_of_limit`` is each
variant's rate over that limit. Prints one JSON line, last.
"""

import argparse
import json
import statistics
import time

import torch

from fewshot.core import registry
from fewshot.core.adaptation import Adaptation
from fewshot.run import experiment
from fewshot.run.adapted import Adapted
from fewshot.run.runtime import tune_allocator
from fewshot.run.training import Budget


def build(setup, variant):
    name, _, network = variant.partition("@")  # "@lenet-bn": on the digit network with batch norm
    overrides = {"backbone": network} if network else {}
    learner = experiment.build(
        experiment.make_setup("finetune", overrides, setup.bench, setup.cell), torch.device("cpu")
    )
    if name == "source-only":
        return learner
    method = Adaptation if name == "forwarded" else registry.adaptation(name)
    output, extracted = experiment.feature_widths(learner.backbone, learner.task.image_shape)
    adaptation = method(output, learner.task.train_classes, dict(method.hparams), 1000, extracted=extracted)
    return Adapted(learner, name, adaptation, 64)


def step_flops(learner, batch, name: str) -> float:
    """Floating-point operations of one training step (forward, backward and the optimiser's update)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        learner.train_step(batch.source if name.startswith("source-only") else batch)
    return float(counter.get_total_flops())


def matmul_rate(size: int = 1024, repeats: int = 20) -> float:
    """Floating-point operations per second of a square single-precision matrix product (median of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="timed steps per variant")
    ap.add_argument("--shift", nargs=2, default=("mnist", "mnist-m"))
    args = ap.parse_args()
    tune_allocator()
    bench = experiment.open_benchmark("digits", "uda", None, source=args.shift[0], target=args.shift[1])
    cell = experiment.resolve_cell(bench, None, None, None, None, 0)
    setup = experiment.make_setup("finetune", {}, bench, cell, None, "dann")
    batches = experiment.batches_for(setup, experiment.build(setup, torch.device("cpu"), Budget(steps=1000)))
    assert batches is not None, "finetune trains on batches"
    methods = [n for n in registry.names("adaptation") if registry.adaptation(n).changes_training]
    # AutoDIAL replaces batch norm where a network has it and inserts its layers where it has none: it is also
    # timed on the batch-norm network against that network's own reference.
    variants = ["source-only", "forwarded", *methods, "forwarded@lenet-bn", "autodial@lenet-bn"]
    learners = {name: build(setup, name) for name in variants}
    times: dict[str, list[float]] = {name: [] for name in variants}
    rounds = max(args.steps // 10, 1)
    for round_ in range(rounds + 1):
        for name in variants:
            learner = learners[name]
            start = time.perf_counter()
            for step in range(10):
                batch = batches(round_ * 10 + step)
                learner.train_step(batch.source if name.startswith("source-only") else batch)
            if round_:  # the first round warms up
                times[name].append((time.perf_counter() - start) / 10)
    median = {name: statistics.median(values) for name, values in times.items()}
    flops = {name: step_flops(learners[name], batches(0), name) for name in variants}
    limit = matmul_rate()
    rate = {name: flops[name] / median[name] for name in variants}
    reference = median["forwarded"]
    overhead = {k: round(median[k] / reference - 1, 3) for k in methods}
    # AutoDIAL's layers are the network's normalisation: against the same network with plain batch norm they
    # are what the method adds. Inserted into a network without normalisation, they also cost what having
    # normalisation layers at all costs (batch_norm_cost), which is the architecture's, not the method's.
    judged = {**overhead, "autodial": round(median["autodial@lenet-bn"] / median["forwarded@lenet-bn"] - 1, 3)}
    print(
        json.dumps(
            {
                "benchmark": "adapt_overhead",
                "shift": "->".join(args.shift),
                "threads": torch.get_num_threads(),
                "steps_per_variant": rounds * 10,
                "step_ms": {k: round(1000 * v, 2) for k, v in median.items()},
                "target_forward_ratio": round(reference / median["source-only"], 3),
                "overhead": overhead,
                "autodial_on_batch_norm_overhead": judged["autodial"],
                "batch_norm_cost": round(median["forwarded@lenet-bn"] / reference - 1, 3),
                "worst": max(judged, key=lambda k: judged[k]),
                "within_30_percent": all(v <= 0.30 for v in judged.values()),
                "mflop_per_step": {k: round(v / 1e6, 1) for k, v in flops.items()},
                "gflop_per_s": {k: round(v / 1e9, 1) for k, v in rate.items()},
                "matmul_gflop_per_s": round(limit / 1e9, 1),
                "fraction_of_limit": {k: round(v / limit, 3) for k, v in rate.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
