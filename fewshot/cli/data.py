"""``fewshot data``: fetching and importing raw datasets."""
from __future__ import annotations

from pathlib import Path

import click

from fewshot.cli.app import (
    cli,
)
from fewshot.core.errors import FewshotError


@cli.group("data")
def data_group():
    """Manage raw datasets."""


@data_group.command("fetch")
@click.argument("dataset")
@click.option("--data-root", default=None, type=click.Path(file_okay=False), help="Where to put the files.")
@click.option("--mirror", default=None, help="Base URL to download from instead of the official release.")
def fetch_command(dataset, data_root, mirror):
    """Download a dataset's official release, checking every file's md5."""
    from fewshot.core.paths import data_root as resolve_root
    from fewshot.run import fetch

    for line in fetch.fetch(dataset, resolve_root(data_root), mirror):
        click.echo(line)


@data_group.command("import")
@click.argument("format", metavar="FORMAT")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", required=True, help="Name of the imported dataset: --dataset xlsa17:NAME.")
def import_command(format, directory, name):
    """Import precomputed features: FORMAT xlsa17 reads DIRECTORY/res101.mat and att_splits.mat (Xian et al. 2018)."""
    if format != "xlsa17":
        raise FewshotError(f"cannot import {format!r}: the importable format is xlsa17")
    from fewshot.tasks.xlsa17 import import_xlsa17

    click.echo(import_xlsa17(Path(directory), name))
