"""MANN speed: training and evaluation episodes per second, batched through the controller or one at a time.

Usage: python benchmarks/mann.py [--ways 5] [--shots 1] [--queries 15] [--meta-batch 16] [--instances 10]
Prints one JSON line, last: training episodes/s with the meta-batch stepped together
(the learner's way) and with one episode per step; episodic evaluation episodes/s;
per-instance evaluation sequences/s with 50 sequences stepped together and one by one.
Images are random (speed does not depend on them), 28x28 like the datasets.
"""

import argparse
import json
import time

import torch

from fewshot.baselines.mann import MANN
from fewshot.core.episode import random_episode
from fewshot.core.learner import TaskSpec
from fewshot.run.runtime import tune_allocator


def rate(fn, items: int, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return items * repeats / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--train-shots", type=int, default=1, help="support images per class in training episodes")
    ap.add_argument("--train-queries", type=int, default=5)
    ap.add_argument("--meta-batch", type=int, default=16)
    ap.add_argument("--instances", type=int, default=10, help="per-instance protocol: images per class")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tune_allocator()
    torch.manual_seed(0)
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), args.ways, args.shots, args.queries, 100)
    learner = MANN(task, {**MANN.hparams, "meta_batch": args.meta_batch})
    batch = [random_episode(args.ways, args.train_shots, args.train_queries, i) for i in range(args.meta_batch)]
    train_batched = rate(lambda: learner.train_step(batch), args.meta_batch, args.repeats)
    train_single = rate(lambda: [learner.train_step([e]) for e in batch], args.meta_batch, max(1, args.repeats // 2))
    learner.eval()
    test = [random_episode(args.ways, args.shots, args.queries, 1000 + i) for i in range(50)]
    eval_episodic = rate(lambda: [learner.predict(e) for e in test], len(test), args.repeats)
    steps = args.ways * args.instances
    x = torch.rand(50, steps, 1, 28, 28)
    y = torch.randint(0, args.ways, (50, steps))
    sequences_batched = rate(lambda: learner.predict_sequences(x, y), 50, args.repeats)
    sequences_single = rate(lambda: [learner.predict_sequences(x[i : i + 1], y[i : i + 1]) for i in range(50)], 50, 1)
    print(
        json.dumps(
            {
                "benchmark": "mann",
                "ways": args.ways,
                "train_episode": f"{args.train_shots}-shot {args.train_queries}-query",
                "meta_batch": args.meta_batch,
                "train_episodes_per_s": round(train_batched, 1),
                "train_episodes_per_s_one_at_a_time": round(train_single, 1),
                "train_batching_speedup": round(train_batched / train_single, 2),
                "eval_episodes_per_s": round(eval_episodic, 1),
                "eval_cell": f"{args.ways}-way {args.shots}-shot {args.queries}-query",
                "per_instance_sequences_per_s": round(sequences_batched, 1),
                "per_instance_sequences_per_s_one_at_a_time": round(sequences_single, 1),
                "per_instance_batching_speedup": round(sequences_batched / sequences_single, 2),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
