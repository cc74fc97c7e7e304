"""Learned optimisers' speed: the coordinatewise LSTM layout, the classifier's functional forward, training steps.

Usage: python benchmarks/learned_optimizers.py [--ways 5] [--shots 1] [--repeats 5]
Prints one JSON line, last:
- ``cell_ms`` / ``lstmcell_ms``: forward and backward of one 20-unit LSTM step over
  every coordinate of the classifier, ``CoordinatewiseLSTMCell`` (states laid out
  ``[units, coordinates]``) against ``nn.LSTMCell`` (``[coordinates, units]``);
- ``trajectory_ms`` / ``functional_call_ms``: one episode's 10 support updates by
  the learned rule (metalstm's, the evaluation's cost), the classifier run by
  ``MAMLConv4.forward_with`` (the suite's way) against ``torch.func.functional_call``;
- ``metalstm_steps_per_s``, ``lstmopt_steps_per_s``: meta-training steps (one
  episode each, the learners' defaults).
Images are random (speed does not depend on them), 28x28 like the datasets.
"""

import argparse
import json
import time

import torch
from torch import nn
from torch.func import functional_call

from fewshot.baselines.learned_optimizer import CoordinatewiseLSTMCell, optimise
from fewshot.baselines.lstmopt import LSTMOptimizer
from fewshot.baselines.metalstm import MetaLSTM
from fewshot.core.episode import random_episode
from fewshot.core.learner import TaskSpec
from fewshot.run.runtime import tune_allocator


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def lstm_step_seconds(coordinates: int, hidden: int, repeats: int) -> tuple[float, float]:
    ours, reference = CoordinatewiseLSTMCell(2, hidden), nn.LSTMCell(2, hidden)
    x = torch.randn(2, coordinates)
    zeros = torch.zeros(hidden, coordinates)

    def step_ours():
        h, c = ours(x, (zeros, zeros))
        (h.sum() + c.sum()).backward()

    def step_reference():
        h, c = reference(x.T, (zeros.T, zeros.T))
        (h.sum() + c.sum()).backward()

    return seconds(step_ours, repeats), seconds(step_reference, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tune_allocator()
    torch.manual_seed(0)
    task = TaskSpec("omniglot", "vinyals", (1, 28, 28), args.ways, args.shots, args.queries, 100)
    metalstm = MetaLSTM(task, dict(MetaLSTM.hparams))
    lstmopt = LSTMOptimizer(task, dict(LSTMOptimizer.hparams))
    coordinates = metalstm.layout.numel
    cell, lstmcell = lstm_step_seconds(coordinates, metalstm.hp["lstm_hidden"], 4 * args.repeats)

    test = random_episode(args.ways, args.shots, args.queries, 0)
    net, layout = metalstm.net, metalstm.layout

    def support_loss_functional(theta):
        logits = functional_call(net, layout.unflatten(theta), (test.support_x,))
        return nn.functional.cross_entropy(logits, test.support_y)

    metalstm.eval()
    with torch.no_grad():
        trajectory = seconds(lambda: metalstm.trajectory(test), args.repeats)
        functional = seconds(
            lambda: optimise(
                support_loss_functional,
                metalstm.initial_parameters(),
                metalstm.hp["inner_steps"],
                metalstm.learned_rule(),
            ),
            args.repeats,
        )
    metalstm.train()
    metalstm_batch = [random_episode(args.ways, args.shots, metalstm.hp["train_queries"], 1)]
    lstmopt_batch = [random_episode(args.ways, args.shots, lstmopt.hp["train_queries"], 1)]
    metalstm_step = seconds(lambda: metalstm.train_step(metalstm_batch), args.repeats)
    lstmopt_step = seconds(lambda: lstmopt.train_step(lstmopt_batch), args.repeats)
    print(
        json.dumps(
            {
                "cell": f"{args.ways}-way {args.shots}-shot, {args.queries} queries",
                "threads": torch.get_num_threads(),
                "coordinates": coordinates,
                "cell_ms": round(1000 * cell, 2),
                "lstmcell_ms": round(1000 * lstmcell, 2),
                "cell_speedup": round(lstmcell / cell, 2),
                "trajectory_ms": round(1000 * trajectory, 1),
                "functional_call_ms": round(1000 * functional, 1),
                "metalstm_steps_per_s": round(1 / metalstm_step, 2),
                "lstmopt_steps_per_s": round(1 / lstmopt_step, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
