"""``fewshot runs``: list the recorded runs, and ``fewshot runs supersede``: mark a wrong one, keeping it."""

from __future__ import annotations

import json
from typing import Any

import click

from fewshot.cli.app import PERCENT, cli


def run_line(run: dict[str, Any]) -> str:
    """One run on one line: id, date, learner, cell, result in percent, code version, and why it was superseded."""
    cell = f"{run['dataset']}/{run['protocol']}"
    if run.get("source"):
        cell += f" {run['source']}→{run['target']}"
    if run.get("adaptation", "none") != "none":
        cell += f" +{run['adaptation']}"
    mean, ci = PERCENT * run["mean"], PERCENT * run["ci95"]
    result = f"{PERCENT - mean:.2f}% ± {ci:.2f} error" if run.get("report") == "error" else f"{mean:.2f}% ± {ci:.2f}"
    commit = (run.get("code_commit") or "no commit") + ("+dirty" if run.get("code_dirty") else "")
    line = (
        f"{run['id']:>5}  {run['created'][:10]}  {run['learner']:<12} {cell}  {_shape(run)}  {result}  "
        f"seed {run['seed']}  {commit}"
    )
    if run.get("train_budget") == "0steps":  # --allow-untrained: the network as initialised
        line += "  untrained"
    if run.get("split", "test") != "test":  # a validation run (--select): not a test figure
        from fewshot.leaderboard.runs import as_dict

        regime = as_dict(run.get("selection")).get("regime")
        line += f"  {run['split']} split" + (f" (--select {regime})" if regime else "")
    if run.get("superseded"):
        line += f"  superseded: {run['superseded']['why']}"
    return line


def _shape(run: dict[str, Any]) -> str:
    """Ways and shots where each unit is an episode; otherwise the number of classes and the protocol's kind."""
    if run["unit"] != "episode":
        return f"{run['ways']} classes, {run['protocol_kind']}"
    return f"{run['ways']}-way {run['shots']}-shot"


def _selected(runs: list[dict[str, Any]], learner: str | None, dataset: str | None, protocol: str | None) -> list:
    wanted = {"learner": learner, "dataset": dataset, "protocol": protocol}
    return [r for r in runs if all(value is None or r[field] == value for field, value in wanted.items())]


@cli.group("runs", invoke_without_command=True)
@click.option("--learner", default=None, help="Only this learner's runs.")
@click.option("--dataset", default=None, help="Only runs on this dataset.")
@click.option("--protocol", default=None, help="Only runs under this protocol.")
@click.option("--all", "show_all", is_flag=True, help="Show superseded runs too, with why.")
@click.option("--results", type=click.Path(dir_okay=False), default=None, help="Results file.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as one JSON line.")
@click.pass_context
def runs_command(ctx, learner, dataset, protocol, show_all, results, as_json):
    """List the recorded runs, one a line, oldest first (superseded ones hidden unless --all).

    Reading only: the results file is opened read-only and nothing on disk changes.
    """
    if ctx.invoked_subcommand is not None:
        return
    from fewshot.core.paths import results_path
    from fewshot.records.store import ResultsStore

    everything = _selected(
        ResultsStore(results_path(results)).runs(include_superseded=True), learner, dataset, protocol
    )
    shown = everything if show_all else [r for r in everything if r["superseded"] is None]
    hidden = len(everything) - len(shown)
    if as_json:
        click.echo(json.dumps({"runs": shown, "superseded_hidden": hidden}))
        return
    for run in shown:
        click.echo(run_line(run))
    if hidden:
        click.echo(f"{hidden} superseded run{'s' if hidden != 1 else ''} hidden (--all shows them)")


@runs_command.command("supersede")
@click.argument("run_id", type=int)
@click.option("--why", required=True, help="Why the run is wrong or replaced (shown beside it with --all).")
@click.option("--by", "by", type=int, default=None, help="The run that replaces it, if any.")
@click.option("--results", type=click.Path(dir_okay=False), default=None, help="Results file.")
def supersede_command(run_id, why, by, results):
    """Mark run RUN_ID superseded: it stays in the file, and listings and the leaderboard hide it."""
    from fewshot.core.paths import results_path
    from fewshot.records.store import ResultsStore

    ResultsStore(results_path(results)).supersede(run_id, why, by=by)
    click.echo(f"run {run_id} superseded{f' by run {by}' if by is not None else ''}: {why.strip()}")
