"""Speed-up of the evaluation's embedding cache over the plain path, on the same episodes.

Learners whose embedding does not depend on the episode embed each distinct
test image once; the plain path embeds every episode's images anew. Both
paths are timed on the same learner and episodes, and their per-episode
accuracies are checked to be identical.

Usage: python benchmarks/eval_cache.py [--learner protonet --dataset omniglot --protocol vinyals --ways 5 --shots 1]
Prints one JSON line, last. Goal: 10x.
"""
import argparse
import json

import numpy as np
import torch

from fewshot import experiment
from fewshot.harness import evaluate
from fewshot.runtime import tune_allocator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learner", default="protonet")
    ap.add_argument("--dataset", default="omniglot")
    ap.add_argument("--protocol", default="vinyals")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--hp", action="append", default=[], help="name=value")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    tune_allocator()

    bench = experiment.open_benchmark(args.dataset, args.protocol, args.data_root)
    cell = experiment.resolve_cell(bench, args.ways, args.shots, args.queries, args.episodes, 0)
    setup = experiment.make_setup(args.learner, dict(h.split("=", 1) for h in args.hp), bench, cell)
    learner = experiment.build(setup, torch.device("cpu"))  # timing does not depend on the weights
    source = experiment.test_source(bench, cell)
    evaluate(learner, source, 5, use_cache=False)  # warm-up
    plain = evaluate(learner, source, args.episodes, use_cache=False)
    cached = evaluate(learner, source, args.episodes, use_cache=True)
    print(json.dumps({"benchmark": "eval_cache", "learner": args.learner, "dataset": args.dataset,
                      "protocol": args.protocol, "ways": args.ways, "shots": args.shots, "queries": args.queries,
                      "episodes": args.episodes, "plain_seconds": round(plain.seconds, 2),
                      "cached_seconds": round(cached.seconds, 2), "speedup": round(plain.seconds / cached.seconds, 2),
                      "same_accuracies": bool(np.array_equal(plain.accuracies, cached.accuracies)), "goal_speedup": 10,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
