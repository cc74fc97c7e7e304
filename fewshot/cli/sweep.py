"""``fewshot sweep GRID``: every job of a grid's tier, on this machine's cores or a Ray cluster, recorded once."""

from __future__ import annotations

import sys

import click

from fewshot.cli.app import cli, progress_lines


@cli.command("sweep")
@click.argument("grid", type=click.Path(dir_okay=False))
@click.option("--tier", default="smoke", show_default=True, help="The grid's tier: smoke, cpu or gpu.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=1024),
    default=None,
    help="Local worker processes  [default: cores / the tier's threads per job]",
)
@click.option("--address", default=None, help="Ray cluster: auto or HOST:PORT  [default: a Ray started here]")
@click.option("--results", type=click.Path(dir_okay=False), default=None, help="Results file.")
@click.option("--dry-run", is_flag=True, help="List the jobs left and their estimated cost; run nothing.")
@click.option(
    "--max-hours",
    type=click.FloatRange(min=0, min_open=True, max=10_000),
    default=None,
    help="Ask before starting a sweep estimated to take longer than this.",
)
@click.option("--yes", is_flag=True, help="Start without asking, whatever the estimate.")
@click.option(
    "--any-code",
    is_flag=True,
    help="Count a job as done when any code version recorded it (a long grid carried over code changes).",
)
@click.option("--keep-checkpoints", is_flag=True, help="Ray: bring each job's checkpoint back into this cache.")
@click.option(
    "--data-root",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder holding the raw datasets (default: $FEWSHOT_DATA).",
)
@click.option("--quiet", is_flag=True, help="No progress bar or per-job lines.")
def sweep_command(
    grid,
    tier,
    backend,
    workers,
    address,
    results,
    dry_run,
    max_hours,
    yes,
    any_code,
    keep_checkpoints,
    data_root,
    quiet,
):
    """Run every job of GRID's tier that is not yet recorded for this code.

    A job is one `fewshot eval` configuration. A sweep stopped at any moment and
    started again runs only what is left; a failing job is recorded with its
    error and reported at the end (exit status 1), never stopping the others.
    """
    from fewshot.core.errors import FewshotError
    from fewshot.core.paths import results_path
    from fewshot.records import store
    from fewshot.records.provenance import provenance
    from fewshot.run.job import code_version
    from fewshot.sweep import driver, estimate, local
    from fewshot.sweep import grid as grids

    if backend == "local" and address:
        raise FewshotError("--address names a Ray cluster: add --backend ray, or leave --address out")
    if backend == "ray" and workers:
        raise FewshotError("--workers sizes the local pool; Ray places jobs by the resources the tier asks for")
    code = provenance()
    found = grids.load(grid)
    chosen = found.tier(tier)
    results_file = results_path(results)
    records = store.ResultsStore(results_file)
    store.check_writable(results_file)
    jobs = driver.unique(found.jobs(tier))
    todo = driver.pending(jobs, records, code_version(code), any_code)
    workers = workers or local.default_workers(chosen.threads)
    runner: driver.Backend | None = None
    if not dry_run and backend == "ray":  # connected before anything is printed: an unreachable cluster is one line
        from fewshot.sweep.ray_backend import RayBackend

        runner = RayBackend(address, chosen.cpus, chosen.gpus, data_root, keep_checkpoints)
    elif not dry_run:
        runner = local.LocalBackend(workers, chosen.threads, data_root)
    parallel = workers if backend == "local" else None
    estimator = estimate.Estimator(records.runs(include_superseded=True) if results_file.exists() else [])
    costs = [estimator.seconds(job) for job in todo]
    known = [c for c in costs if c is not None]
    total = sum(known)
    wall = total / parallel if parallel else None
    unknown = len(costs) - len(known)
    summary = (
        f"{found.name} ({tier} tier): {len(jobs)} jobs, {len(jobs) - len(todo)} already recorded, {len(todo)} to run"
        f"; estimated {estimate.hours(total)} of work"
        + (f", {estimate.hours(wall)} on {parallel} worker{'' if parallel == 1 else 's'}" if wall is not None else "")
        + (f" ({unknown} jobs with no similar recorded run, not counted)" if unknown else "")
    )
    if dry_run:
        for job, cost in zip(todo, costs):
            shown = estimate.hours(cost) if cost is not None else "?"
            click.echo(f"{shown:>8}  {job.command()}")
        click.echo(summary)
        return
    click.echo(summary, err=True)
    hours = (wall if wall is not None else total) / 3600
    if max_hours is not None and hours > max_hours and not yes:
        if not sys.stdin.isatty():
            raise FewshotError(
                f"the sweep is estimated at {hours:.1f} h, over --max-hours {max_hours:g}; add --yes to run it anyway"
            )
        click.confirm(f"The sweep is estimated at {hours:.1f} h, over --max-hours {max_hours:g}. Run it?", abort=True)
    if not todo:
        click.echo("nothing to run: every job is recorded for this code")
        return
    assert runner is not None, "a backend is made for every sweep but a dry run"
    report = driver.run_sweep(
        todo, runner, records, code, progress=not quiet, log=progress_lines(quiet), any_code=any_code
    )
    click.echo(
        f"{len(report.recorded)} runs recorded in {results_file}, {report.skipped + len(jobs) - len(todo)} "
        f"already recorded, {report.taken} recorded by another sweep, {len(report.failed)} failed"
    )
    for outcome in report.failed:
        click.echo(f"failed: {outcome.job.label()}: {outcome.error}")
        click.echo(f"  rerun alone: {outcome.job.command()}")
    if report.failed:
        sys.exit(1)
