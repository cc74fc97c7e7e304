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
@click.option(
    "--name", default=None, help="Name of the imported dataset (see `fewshot datasets`); some formats name it."
)
@click.option(
    "--csv",
    "csv_file",
    default=None,
    type=click.Path(path_type=Path),
    help="A CSV of path,label[,split] rows instead of PATH (paths relative to the CSV's folder).",
)
@click.option("--size", type=int, default=None, help="Side of the square images in pixels (image formats).")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="1 (grey) or 3 (RGB) (image formats).")
@click.option("--force", is_flag=True, help="Replace an import of the same name.")
def import_command(format, path, name, csv_file, size, channels, force):
    """Import a dataset in place into the cache, checked and decoded once.

    FORMAT is one of the import formats `fewshot datasets` lists, each with what PATH holds and the options it reads.
    """
    from fewshot.core import registry

    formats = registry.names("importer")
    if format not in formats:
        raise FewshotError(f"cannot import {format!r}: the importable formats are {', '.join(formats)}")
    reader = registry.importer(format)
    name = name or reader.default_name
    if not name:
        raise FewshotError(f"{format} imports need a name: fewshot data import {format} PATH --name NAME")
    given = {
        "csv": csv_file,
        "size": size,
        "channels": None if channels is None else int(channels),
        "force": force or None,
    }
    options = {key: value for key, value in given.items() if value is not None}
    unread = [key for key in options if key not in reader.options]
    if unread:
        raise FewshotError(f"{format} imports take no --{unread[0]}")
    click.echo(reader.import_files(name, path, options))
