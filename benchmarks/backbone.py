"""Conv-4 training-step time in the default and the channels-last memory layout.

Usage: python benchmarks/backbone.py [--images 360] [--no-tune-allocator]
Prints one JSON line, last: seconds per step for both layouts and their ratio.
"""

import argparse
import json
import time

import torch
from torch import nn

from fewshot.core.backbones import conv_block
from fewshot.run.runtime import tune_allocator


def seconds_per_step(images: int, channels_last: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(*[conv_block(1 if i == 0 else 64, 64) for i in range(4)], nn.Flatten())
    x = torch.rand(images, 1, 28, 28)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters())

    def step() -> None:
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=360, help="images per step (protonet's 60-way 1-shot 5-query: 360)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--no-tune-allocator", action="store_true")
    args = ap.parse_args()
    tuned = False if args.no_tune_allocator else tune_allocator()
    default = seconds_per_step(args.images, False, args.steps)
    channels_last = seconds_per_step(args.images, True, args.steps)
    print(
        json.dumps(
            {
                "benchmark": "backbone",
                "images": args.images,
                "allocator_tuned": tuned,
                "default_s_per_step": round(default, 4),
                "channels_last_s_per_step": round(channels_last, 4),
                "speedup": round(default / channels_last, 2),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
