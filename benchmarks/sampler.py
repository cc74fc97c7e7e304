"""Episodes per second of the sampler: plan (integers) and full episodes (images gathered).

Usage: python benchmarks/sampler.py [--dataset omniglot --protocol vinyals --ways 5 --shots 1 --queries 15]
Prints one JSON line, last. Goal: at least 2,000 episodes/s for Omniglot 5-way 1-shot 15 queries.
"""

import argparse
import json
import time

import torch

from fewshot.core.sampler import EpisodeSampler
from fewshot.run.experiment import open_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="omniglot")
    ap.add_argument("--protocol", default="vinyals")
    ap.add_argument("--split", default="test")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--episodes", type=int, default=5000)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    bench = open_benchmark(args.dataset, args.protocol, args.data_root)
    sampler = EpisodeSampler(bench.data, bench.required_split(args.split), args.ways, args.shots, args.queries, seed=0)
    for i in range(100):  # warm-up
        sampler[i]
    start = time.perf_counter()
    for i in range(args.episodes):
        sampler.plan(i)
    plans = args.episodes / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(args.episodes):
        sampler[i]
    episodes = args.episodes / (time.perf_counter() - start)
    print(
        json.dumps(
            {
                "benchmark": "sampler",
                "dataset": args.dataset,
                "protocol": args.protocol,
                "split": args.split,
                "ways": args.ways,
                "shots": args.shots,
                "queries": args.queries,
                "episodes": args.episodes,
                "episodes_per_s": round(episodes, 1),
                "plans_per_s": round(plans, 1),
                "goal_episodes_per_s": 2000,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
