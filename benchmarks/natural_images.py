"""Natural images at 84 px: the episode sampler from a memory-mapped import, and ProtoNet's training step with
Conv-4 and ResNet-12 against a plain PyTorch loop of the same network and loss in the same run.

Usage: python benchmarks/natural_images.py [--classes 64] [--per-class 200] [--episodes 300] [--steps 3]
       [--device cpu|cuda]
Synthetic uint8 images (the sampler's cost does not depend on what they show) are stored the way an import
stores them (a plain .npy opened memory-mapped above 256 MB). Prints one JSON line, last: episodes per second
(5-way 5-shot, 15 queries), and per backbone the suite's and the plain loop's seconds (and images per second)
per training step on 5-way 5-shot 15-query episodes, their ratio, and on CUDA the peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fewshot.baselines.protonet import ProtoNet, prototype_logits
from fewshot.core.backbones import make_backbone
from fewshot.core.data import ClassImages, ClassInfo, Split, mapped_images_path
from fewshot.core.learner import TaskSpec
from fewshot.core.sampler import EpisodeSampler

WAYS, SHOTS, QUERIES = 5, 5, 15


def synthetic_import(folder: Path, classes: int, per_class: int) -> tuple[ClassImages, bool]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (classes * per_class, 3, 84, 84), dtype=torch.uint8, generator=generator)
    data = ClassImages(
        images,
        torch.arange(classes).repeat_interleave(per_class),
        tuple(ClassInfo(f"n{c:08d}", "") for c in range(classes)),
        key="bench",
    )
    path = folder / "bench.npz"
    data.save(path, mapped=images.numel() > 256 * 2**20)
    del data, images
    return ClassImages.load(path), mapped_images_path(path).exists()


def episodes_per_second(data: ClassImages, episodes: int) -> float:
    classes = len(data.classes)
    sampler = EpisodeSampler(data, Split.of(list(range(classes))), WAYS, SHOTS, QUERIES, seed=0, role="train")
    sampler[0]
    start = time.perf_counter()
    for i in range(episodes):
        sampler[i]
    return episodes / (time.perf_counter() - start)


def training_steps(data: ClassImages, backbone: str, steps: int, device: torch.device) -> dict[str, float]:
    classes = len(data.classes)
    sampler = EpisodeSampler(data, Split.of(list(range(classes))), WAYS, SHOTS, QUERIES, seed=0, role="train")
    episodes = [sampler[i].to(device) for i in range(steps + 1)]
    task = TaskSpec("bench", "bench", (3, 84, 84), WAYS, SHOTS, QUERIES, classes)
    hp = {**ProtoNet.hparams, "backbone": backbone, "train_ways": WAYS, "train_queries": QUERIES}

    torch.manual_seed(0)
    learner = ProtoNet(task, hp).to(device)
    learner.train_step([episodes[0]])
    suite = _timed(lambda i: learner.train_step([episodes[1 + i % steps]]), steps, device)

    torch.manual_seed(0)
    network, _ = make_backbone(backbone, (3, 84, 84))
    network = network.to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)

    def plain(i: int) -> None:
        episode = episodes[1 + i % steps]
        features = network(torch.cat([episode.support_x, episode.query_x]))
        n = episode.support_y.numel()
        loss = F.cross_entropy(prototype_logits(features[:n], features[n:], WAYS), episode.query_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    plain(0)
    reference = _timed(plain, steps, device)
    images = WAYS * (SHOTS + QUERIES)
    figures = {
        "suite_s_per_step": round(suite, 4),
        "plain_s_per_step": round(reference, 4),
        "suite_over_plain": round(suite / reference, 3),
        "images_per_s": round(images / suite, 1),
    }
    if device.type == "cuda":
        figures["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return figures


def _timed(step, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        data, mapped = synthetic_import(Path(folder), args.classes, args.per_class)
        rate = episodes_per_second(data, args.episodes)
        result = {
            "images": len(data.labels),
            "memory_mapped": mapped,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "episodes_per_s_5w5s15q": round(rate, 1),
        }
        for backbone in ("conv4", "resnet12"):
            result[backbone] = training_steps(data, backbone, args.steps, device)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
