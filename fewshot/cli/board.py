"""``fewshot leaderboard`` and ``fewshot compare``: reading the records.

Both only read: ``ResultsStore.runs`` and ``.run`` open the file read-only, so
neither changes anything on disk (the leaderboard writes only its --output).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fewshot.cli.app import (
    cli,
)


@cli.command("leaderboard")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "html"]), default="md", show_default=True)
@click.option("--results", type=click.Path(dir_okay=False), default=None, help="Results file.")
@click.option(
    "--output",
    type=click.Path(),
    default=None,
    help="Write to this file instead of stdout; with --format html, the folder the site is written into.",
)
def leaderboard_command(fmt, results, output):
    """Per benchmark a matrix of learners x cells (mean ± 95% interval beside the paper's figure), then each
    protocol's table. ``--format html --output DIR`` writes a static site: open DIR/index.html."""
    from fewshot.core.data import atomic_write
    from fewshot.core.errors import FewshotError
    from fewshot.core.paths import results_path
    from fewshot.leaderboard.table import render
    from fewshot.records.store import ResultsStore

    found = ResultsStore(results_path(results))
    if fmt == "html":
        if not output:
            raise FewshotError("--format html writes a site of several pages: give the folder with --output DIR")
        from fewshot.leaderboard.site import write_site

        try:
            click.echo(f"wrote {write_site(found, Path(output))}")
        except OSError as err:
            raise FewshotError(f"cannot write the site into --output {output}: {err.strerror or err}") from None
        return
    text = render(
        found.runs(), fmt, hidden=found.superseded_count(), accuracies=lambda run: found.run(run["id"])["accuracies"]
    )
    if output:
        try:
            atomic_write(Path(output), lambda f: f.write(text.encode()))
        except OSError as err:
            raise FewshotError(f"cannot write --output {output}: {err.strerror or err}; choose a file path") from None
    else:
        click.echo(text, nl=False)


@cli.command("compare")
@click.argument("run_a", type=int)
@click.argument("run_b", type=int)
@click.option("--results", type=click.Path(dir_okay=False), default=None, help="Results file.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON line.")
def compare_command(run_a, run_b, results, as_json):
    """Paired difference of two runs on identical episodes, images or classes (A minus B), with its 95% interval."""
    from fewshot.core.paths import results_path
    from fewshot.leaderboard.table import compare
    from fewshot.records.store import ResultsStore

    found = ResultsStore(results_path(results))
    outcome = compare(found.run(run_a), found.run(run_b))
    if as_json:
        click.echo(json.dumps(outcome))
        return
    click.echo(
        f"run {run_a} ({outcome['a']}) minus run {run_b} ({outcome['b']}) on {outcome['pairs']} identical "
        f"{outcome['unit']}s:"
    )
    click.echo(
        f"difference {outcome['difference']:+.2f} points ± {outcome['ci95']:.2f} (95% interval); {outcome['verdict']}"
    )
