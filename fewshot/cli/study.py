"""``fewshot study``: which layers transfer (the studies themselves are in ``fewshot.leaderboard.studies``)."""

from __future__ import annotations

from pathlib import Path

import click

from fewshot.cli.app import cli, progress_lines
from fewshot.core.errors import FewshotError


def _study_options(fn):
    options = [
        click.option(
            "--steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Training steps per network."
        ),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
        click.option(
            "--out",
            type=click.Path(file_okay=False),
            default=".",
            show_default=True,
            help="Folder for the study's CSV and PNG.",
        ),
        click.option(
            "--data-root", default=None, type=click.Path(file_okay=False), help="Folder holding the raw datasets."
        ),
        click.option("--quiet", is_flag=True, help="No progress lines."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@cli.group("study")
def study_group():
    """Which layers transfer: Yosinski et al.'s study, and frozen against fine-tuned features across a domain shift."""


@study_group.command("transfer")
@click.option("--dataset", required=True, help="Dataset whose training classes are split in two (`fewshot datasets`).")
@click.option("--protocol", default=None, help="Protocol of the dataset (default: the dataset's own).")
@_study_options
def study_transfer_command(dataset, protocol, steps, seed, out, data_root, quiet):
    """Yosinski et al. 2014: BnB, BnB+, AnB, AnB+ for every cut of the backbone (CSV and PNG)."""
    from fewshot.leaderboard.studies import common, transfer
    from fewshot.run import experiment

    bench = experiment.open_benchmark(dataset, protocol, data_root)
    if bench.split("train") is None or bench.data.is_features:
        raise FewshotError(f"{dataset}/{bench.protocol} has no training classes of images to split in two")
    out = _study_folder(out)
    rows = transfer.transfer_study(bench, steps, seed, log=progress_lines(quiet))
    name = f"transfer-{dataset}"
    common.write_csv(out / f"{name}.csv", rows)
    title = f"{dataset}: halves A and B of the training classes\n{steps} steps per network"
    transfer.plot_transfer(out / f"{name}.png", rows, title)
    click.echo(f"wrote {out / name}.csv and .png")


@study_group.command("freeze")
@click.option("--dataset", required=True, help="A dataset with domains (`fewshot datasets`).")
@click.option("--source", default=None, help="Source domain  [default: the dataset's default shift, if it has one]")
@click.option("--target", default=None, help="Target domain  [default: the dataset's default shift, if it has one]")
@click.option("--labelled", default="10,100,1000", show_default=True, help="Numbers of labelled target images.")
@_study_options
def study_freeze_command(dataset, source, target, labelled, steps, seed, out, data_root, quiet):
    """Frozen source features, fine-tuning and training from scratch against the number of labelled target images."""
    import torch

    from fewshot.leaderboard.studies import common, freeze
    from fewshot.run import experiment

    try:
        counts = tuple(int(v) for v in labelled.split(","))
    except ValueError:
        raise FewshotError(
            f"--labelled {labelled!r}: write whole numbers separated by commas, like 10,100,1000"
        ) from None
    if not counts or min(counts) < 1:
        raise FewshotError(f"--labelled {labelled!r}: every number must be at least 1")
    source, target = _shift(dataset, source, target)
    bench = experiment.open_benchmark(dataset, None, data_root, source=source, target=target)
    train, test, pool = bench.split("train"), bench.split("test"), bench.split("target")
    if pool is None or pool.image_mask is None:
        raise FewshotError(f"{dataset}/{bench.protocol} has no unlabelled target training images to label")
    if train is None or test is None or not torch.equal(train.classes, test.classes):
        raise FewshotError(
            f"{dataset}/{bench.protocol} does not test on its training classes: the study scores the target test "
            f"images among them (pick a dataset whose shift keeps the classes)"
        )
    out = _study_folder(out)
    rows = freeze.freeze_study(bench, steps, counts, seed, log=progress_lines(quiet))
    name = f"freeze-{source}-{target}"
    common.write_csv(out / f"{name}.csv", rows)
    freeze.plot_freeze(out / f"{name}.png", rows, f"{source} -> {target}: {steps} steps per network")
    click.echo(f"wrote {out / name}.csv and .png")


def _shift(dataset: str, source: str | None, target: str | None) -> tuple[str, str]:
    """``--source`` and ``--target``, either one left out taken from the dataset's ``default_shift``."""
    from fewshot.core import registry

    found = registry.dataset(dataset)
    domains = getattr(found, "domains", ())
    if not domains:
        raise FewshotError(f"{dataset} has no domains: the freeze study needs a domain shift (see `fewshot datasets`)")
    if source is None or target is None:
        shift = getattr(found, "default_shift", None)
        if shift is None:
            missing = " and ".join(f"--{role}" for role, given in (("source", source), ("target", target)) if not given)
            raise FewshotError(
                f"{dataset} declares no default shift: pass {missing} (its domains: {', '.join(domains)})"
            )
        source, target = source or shift[0], target or shift[1]
    return source, target


def _study_folder(out: str) -> Path:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise FewshotError(f"--out {out}: not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FewshotError(f"--out {out}: cannot create it ({err})") from None
    return folder
