"""Speed-up of the evaluation's embedding cache over the plain path, on the same episodes.

Learners whose embedding does not depend on the episode embed each test image
once; the plain path embeds every episode's images anew. Three timings per
cell, on the same learner and episodes, with per-episode accuracies checked to
be identical:

* plain: every episode embeds its own images;
* cached: the distinct images of the M episodes are embedded once, in memory;
* persisted: the whole split's table is computed once and kept on disk (the
  first cell of a sweep pays for it; later cells of the same checkpoint and
  split load it).

By default the sweep is the standard table of a paper: 5-way and 20-way,
1-shot and 5-shot, 600 episodes each. Usage:
  python benchmarks/eval_cache.py [--learner protonet --dataset omniglot --protocol vinyals] [--cells 5x1,20x5]
Prints one JSON line, last. Goal: 10x.
"""

import argparse
import json
import os
import tempfile

import numpy as np
import torch

from fewshot.run import experiment
from fewshot.run.evaluation import evaluate
from fewshot.run.runtime import tune_allocator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learner", default="protonet")
    ap.add_argument("--dataset", default="omniglot")
    ap.add_argument("--protocol", default="vinyals")
    ap.add_argument("--cells", default="5x1,5x5,20x1,20x5", help="ways x shots, comma separated")
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--hp", action="append", default=[], help="name=value")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    tune_allocator()
    overrides = dict(h.split("=", 1) for h in args.hp)
    cells, totals = [], {"plain": 0.0, "cached": 0.0, "persisted": 0.0}
    learner = None
    with tempfile.TemporaryDirectory() as scratch:
        bench = experiment.open_benchmark(args.dataset, args.protocol, args.data_root)
        os.environ["FEWSHOT_CACHE"] = scratch  # persisted tables start empty; the decoded dataset was loaded above
        for text in args.cells.split(","):
            ways, shots = (int(v) for v in text.split("x"))
            cell = experiment.resolve_cell(bench, ways, shots, args.queries, args.episodes, 0)
            setup = experiment.make_setup(args.learner, overrides, bench, cell)
            learner = learner or experiment.build(setup, torch.device("cpu"))  # timing does not depend on the weights
            source = experiment.test_source(bench, cell)
            evaluate(learner, source, 3, use_cache=False)  # warm-up
            plain = evaluate(learner, source, args.episodes, use_cache=False)
            cached = evaluate(learner, source, args.episodes, use_cache=True)
            persisted = evaluate(learner, source, args.episodes, persist=True)
            same = np.array_equal(plain.accuracies, cached.accuracies) and np.array_equal(
                plain.accuracies, persisted.accuracies
            )
            cells.append(
                {
                    "ways": ways,
                    "shots": shots,
                    "plain_s": round(plain.seconds, 2),
                    "cached_s": round(cached.seconds, 2),
                    "persisted_s": round(persisted.seconds, 2),
                    "table": persisted.table_source,
                    "speedup_cached": round(plain.seconds / cached.seconds, 2),
                    "same_accuracies": same,
                }
            )
            totals["plain"] += plain.seconds
            totals["cached"] += cached.seconds
            totals["persisted"] += persisted.seconds
            print(json.dumps(cells[-1]), flush=True)
    print(
        json.dumps(
            {
                "benchmark": "eval_cache",
                "learner": args.learner,
                "dataset": args.dataset,
                "protocol": args.protocol,
                "queries": args.queries,
                "episodes": args.episodes,
                "cells": cells,
                "sweep_plain_s": round(totals["plain"], 2),
                "sweep_cached_s": round(totals["cached"], 2),
                "sweep_persisted_s": round(totals["persisted"], 2),
                "speedup_cached": round(totals["plain"] / totals["cached"], 2),
                "speedup_persisted": round(totals["plain"] / totals["persisted"], 2),
                "same_accuracies": all(c["same_accuracies"] for c in cells),
                "goal_speedup": 10,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
