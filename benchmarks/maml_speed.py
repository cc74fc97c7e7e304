"""MAML meta-training speed against the learn2learn-style reference, in one run.

Usage: python benchmarks/maml_speed.py [--ways 5] [--shots 1] [--queries 15] [--meta-batch 32] [--steps 1]
       [--first-order] [--pool] [--size 28] [--iterations 5] [--reference ../shared/bench/maml_reference.py]

Times the suite's own ``maml`` learner (``train_step`` on a meta-batch of
episodes: inner steps of size 0.4, Adam outer step) on the configuration of
the flags, then runs the reference program with the same flags in a child
process, one after the other on the same machine. Inputs are random tensors
of the right shapes, as in the reference (a step's cost does not depend on
pixel values). Prints one JSON line, last: ``tasks_per_s``, ``peak_rss_mb``
(this process's high-water mark: Python, torch and the suite's run), the
reference's ``reference_tasks_per_s`` and ``reference_peak_rss_mb`` (the same
measure, in its own process), and ``speedup``, the ratio of the two rates.
``--reference ''`` skips the reference.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from fewshot.baselines.maml import MAML
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.learner import TaskSpec
from fewshot.run.runtime import tune_allocator

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "maml_reference.py"
FLAGS = ("ways", "shots", "queries", "meta_batch", "steps", "size", "iterations")


def episodes(args: argparse.Namespace) -> list[Episode]:
    generator = torch.Generator().manual_seed(0)
    shape = (1, args.size, args.size)
    return [
        Episode(
            torch.randn(args.ways * args.shots, *shape, generator=generator),
            grouped_labels(args.ways, args.shots),
            torch.randn(args.ways * args.queries, *shape, generator=generator),
            grouped_labels(args.ways, args.queries),
            torch.arange(args.ways),
            seed=i,
        )
        for i in range(args.meta_batch)
    ]


def suite_rate(args: argparse.Namespace) -> float:
    torch.manual_seed(0)
    task = TaskSpec("random", "benchmark", (1, args.size, args.size), args.ways, args.shots, args.queries, 100)
    learner = MAML(
        task,
        {
            **MAML.hparams,
            "inner_lr": 0.4,
            "inner_steps": args.steps,
            "meta_batch": args.meta_batch,
            "train_queries": args.queries,
            "first_order": args.first_order,
            "pool": args.pool,
        },
    )
    batch = episodes(args)
    learner.train_step(batch)  # warm-up, as the reference does
    start = time.perf_counter()
    for _ in range(args.iterations):
        learner.train_step(batch)
    return args.meta_batch * args.iterations / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark. Read from /proc where there is one: unlike
    getrusage, it starts afresh at exec, so a child does not inherit the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Runs the reference program as __main__, then prints its peak memory as one more JSON line.
REFERENCE_WRAPPER = """
import json, runpy, sys
sys.path.insert(0, sys.argv.pop(1))
from maml_speed import peak_rss_mb
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
"""


def reference_run(args: argparse.Namespace) -> dict:
    command = [sys.executable, "-c", REFERENCE_WRAPPER, str(Path(__file__).parent), str(args.reference)]
    for flag in FLAGS:
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    command += ["--first-order"] * args.first_order + ["--pool"] * args.pool
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()
    return {**json.loads(lines[-2]), **json.loads(lines[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--meta-batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1, help="inner SGD steps")
    ap.add_argument("--first-order", action="store_true")
    ap.add_argument("--pool", action="store_true", help="max-pool Conv-4 instead of strided")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--iterations", type=int, default=5, help="timed meta-iterations")
    ap.add_argument("--reference", default=str(REFERENCE), help="the reference program ('' to skip it)")
    args = ap.parse_args()
    tune_allocator()
    rate = suite_rate(args)
    figures = {"impl": "fewshot maml", "tasks_per_s": round(rate, 2), "peak_rss_mb": round(peak_rss_mb(), 1)}
    if args.reference:
        reference = reference_run(args)
        figures.update(
            reference_tasks_per_s=reference["tasks_per_s"],
            reference_peak_rss_mb=round(reference["peak_rss_mb"], 1),
            speedup=round(rate / reference["tasks_per_s"], 2),
        )
    figures.update(
        {flag: getattr(args, flag) for flag in FLAGS},
        first_order=args.first_order,
        pool=args.pool,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
