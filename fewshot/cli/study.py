"""``fewshot study``: which layers transfer (the studies themselves are in ``fewshot.leaderboard.studies``)."""
from __future__ import annotations

from pathlib import Path

import click

from fewshot.cli.app import (
    cli,
    progress_lines,
)
from fewshot.core.errors import FewshotError


def _study_options(fn):
    options = [
        click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Training steps per network."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
        click.option("--out", type=click.Path(file_okay=False), default=".", show_default=True,
                     help="Folder for the study's CSV and PNG."),
        click.option("--data-root", default=None, type=click.Path(file_okay=False),
                     help="Folder holding the raw datasets."),
        click.option("--quiet", is_flag=True, help="No progress lines."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@cli.group("study")
def study_group():
    """Which layers transfer: Yosinski et al.'s study, and frozen against fine-tuned features on a digit shift."""


@study_group.command("transfer")
@click.option("--dataset", default="glyphs", show_default=True, help="Dataset whose training classes are split in two.")
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
    transfer.plot_transfer(out / f"{name}.png", rows, f"{dataset}: halves A and B of the training classes\n"
                                                      f"{steps} steps per network")
    click.echo(f"wrote {out / name}.csv and .png")


@study_group.command("freeze")
@click.option("--dataset", default="digits", show_default=True, help="A dataset with domains.")
@click.option("--source", default="mnist", show_default=True)
@click.option("--target", default="usps", show_default=True)
@click.option("--labelled", default="10,100,1000", show_default=True, help="Numbers of labelled target images.")
@_study_options
def study_freeze_command(dataset, source, target, labelled, steps, seed, out, data_root, quiet):
    """Frozen source features, fine-tuning and training from scratch against the number of labelled target images."""
    from fewshot.leaderboard.studies import common, freeze
    from fewshot.run import experiment

    try:
        counts = tuple(int(v) for v in labelled.split(","))
    except ValueError:
        raise FewshotError(f"--labelled {labelled!r}: write whole numbers separated by commas, like 10,100,1000") from None
    if not counts or min(counts) < 1:
        raise FewshotError(f"--labelled {labelled!r}: every number must be at least 1")
    bench = experiment.open_benchmark(dataset, "uda", data_root, source=source, target=target)  # digits' protocol
    out = _study_folder(out)
    rows = freeze.freeze_study(bench, steps, counts, seed, log=progress_lines(quiet))
    name = f"freeze-{source}-{target}"
    common.write_csv(out / f"{name}.csv", rows)
    freeze.plot_freeze(out / f"{name}.png", rows, f"{source} -> {target}: {steps} steps per network")
    click.echo(f"wrote {out / name}.csv and .png")


def _study_folder(out: str) -> Path:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise FewshotError(f"--out {out}: not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FewshotError(f"--out {out}: cannot create it ({err})") from None
    return folder
