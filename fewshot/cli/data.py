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
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Name of the imported dataset (--dataset NAME, or xlsa17:NAME).")
@click.option("--csv", "csv_file", default=None, type=click.Path(path_type=Path),
              help="folder: a CSV of path,label[,split] rows instead of class sub-folders (paths relative to it).")
@click.option("--size", type=int, default=None, help="folder: side of the square images in pixels  [default: 84]")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None,
              help="folder: 1 (grey) or 3 (RGB)  [default: 3]")
@click.option("--force", is_flag=True, help="Replace an import of the same name.")
def import_command(format, path, name, csv_file, size, channels, force):
    """Import a dataset in place into the cache, checked and decoded once.

    FORMAT folder: PATH holds one sub-folder of images per class (png, jpg, jpeg, bmp, gif), or --csv FILE
    lists them. FORMAT xlsa17: PATH holds Xian et al. 2018's res101.mat and att_splits.mat.
    """
    from fewshot.core import registry

    if format not in registry.importers():
        raise FewshotError(f"cannot import {format!r}: the importable formats are {', '.join(registry.importers())}")
    given = {"csv": csv_file, "size": size, "channels": None if channels is None else int(channels),
             "force": force or None}
    options = {key: value for key, value in given.items() if value is not None}
    click.echo(registry.dataset_class(format).import_files(name, path, options))
