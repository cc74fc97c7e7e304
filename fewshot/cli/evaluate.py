"""``fewshot eval`` and ``fewshot train``: the cell's words go to the protocol that scores them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fewshot.cli.app import (
    PERCENT,
    SIDE_HELP,
    WAYS,
    cell_options,
    cli,
    progress_lines,
    protocol_options,
    protocol_words,
)
from fewshot.core.protocol import MAX_STEPS


@cli.command("eval")
@click.option("--learner", required=True, help="Learner (see `fewshot learners`).")
@click.option(
    "--ways",
    type=WAYS,
    default=None,
    help="Classes per episode, or all: every test class at once (zero-shot protocols' default).",
)
@click.option("--shots", type=int, default=None, help="Support images per class (0: zero-shot).")
@click.option("--side", default=None, help=SIDE_HELP)
@click.option("--queries", type=int, default=None, help="Query images per class  [default: 15]")
@click.option("--episodes", type=int, default=None, help="Test episodes  [default: 600]")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Evaluate this checkpoint instead of training (or reusing) one.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    default=None,
    help="Results file (default: $FEWSHOT_RESULTS or the user's data folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@click.option("--no-embedding-cache", is_flag=True, help="Embed every episode's images anew (the plain path).")
@protocol_options
@cell_options
def eval_command(
    learner,
    ways,
    shots,
    side,
    queries,
    episodes,
    checkpoint,
    results,
    as_json,
    no_embedding_cache,
    dataset,
    protocol,
    seed,
    hp,
    budget,
    device,
    data_root,
    quiet,
    adapt,
    source,
    target,
    target_labels,
    select,
    val_images,
    allow_untrained,
    kind=None,
    **protocol_given,
):
    """Evaluate a learner on seeded test episodes and record the run.

    With no --checkpoint the learner is first trained with its default budget
    for the dataset (or --budget), and the checkpoint is cached by
    configuration, so a second run only evaluates.
    """
    from fewshot.core.learner import parse_hp_options
    from fewshot.core.paths import results_path
    from fewshot.records import store
    from fewshot.records.provenance import provenance
    from fewshot.run import job as jobs

    provenance()  # the code as it is when the run starts, not after a training long enough for the tree to change
    results_file = results_path(results)
    store.check_writable(results_file)
    words = protocol_words(ways, shots, queries, episodes, seed, kind, protocol_given)
    job = jobs.Job(
        learner,
        dataset,
        protocol,
        words.ways,
        words.shots,
        words.queries,
        words.episodes,
        words.seed,
        words.kind,
        tuple(sorted(words.options.items())),
        side,
        tuple(sorted(parse_hp_options(hp).items())),
        budget,
        adapt,
        source,
        target,
        target_labels,
        device,
        allow_untrained=allow_untrained,
        select=select,
        val_images=val_images,
    )
    checkpoint_path = Path(checkpoint) if checkpoint else None
    planned = jobs.plan(job, data_root, checkpoint_path)
    done = jobs.execute(
        planned,
        checkpoint_path,
        use_cache=False if no_embedding_cache else None,
        progress=not quiet,
        log=progress_lines(quiet),
    )
    setup, result, trained, figures = planned.setup, done.result, done.trained, done.figures
    scoring, cell = setup.protocol, setup.cell
    run_id = store.ResultsStore(results_file).record(done.run, done.accuracies, figures)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "mean": round(result.mean * PERCENT, 4),
                    "ci95": round(result.ci95 * PERCENT, 4),
                    "episodes": cell.episodes,
                    "seconds": round(result.seconds, 3),
                    "run_id": run_id,
                    "learner": learner,
                    "dataset": cell.dataset,
                    "protocol": cell.protocol,
                    "split": cell.split,
                    **({"select": setup.bench.selection} if setup.bench.selection else {}),
                    "ways": cell.ways,
                    "shots": cell.shots,
                    "queries": cell.queries,
                    "seed": cell.seed,
                    "episodes_per_s": round(result.episodes_per_s, 2),
                    "train_steps": trained.steps,
                    "backbone": done.run["backbone"],
                    "digest": result.digest,
                    "protocol_kind": cell.kind,
                    "unit": scoring.unit,
                    **({"side": cell.side} if cell.side else {}),
                    **({"source": cell.source, "target": cell.target, "adapt": setup.adapt} if cell.source else {}),
                    **{k: round(v * PERCENT, 4) for k, v in figures.items()},
                    **({"selected_on_val": setup.selection["chosen"]} if setup.selection else {}),
                }
            )
        )
        return
    for line in scoring.report(setup, result):
        click.echo(line)
    if setup.bench.selection:
        click.echo(f"a validation run, for making choices on, not a test figure: {setup.bench.notes}")
    click.echo(
        f"{result.seconds:.1f} s, {result.episodes_per_s:.1f} {scoring.unit}s/s; trained {trained.steps} steps; "
        f"run {run_id} in {results_file}"
    )


@cli.command("train")
@click.option("--learner", required=True, help="Learner (see `fewshot learners`).")
@click.option(
    "--ways",
    type=WAYS,
    default=None,
    help="Test-time ways (validation; some learners train on it)  [default: 5, all for zero-shot protocols]",
)
@click.option("--shots", type=int, default=None, help="Test-time shots  [default: 1, 0 for zero-shot protocols]")
@click.option("--side", default=None, help=SIDE_HELP)
@click.option("--queries", type=int, default=None, help="Queries per class in validation episodes  [default: 15]")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the checkpoint (default: the cache, where `fewshot eval` finds it).",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1, max=MAX_STEPS),
    default=500,
    show_default=True,
    help="Steps between partial checkpoints (a killed run resumes from the last).",
)
@protocol_options
@cell_options
def train_command(
    learner,
    ways,
    shots,
    side,
    queries,
    out,
    checkpoint_every,
    dataset,
    protocol,
    seed,
    hp,
    budget,
    device,
    data_root,
    quiet,
    adapt,
    source,
    target,
    target_labels,
    select,
    val_images,
    allow_untrained,
    kind=None,
    **protocol_given,
):
    """Train a learner for a budget; a rerun of the same command resumes an interrupted training."""
    from fewshot.core.learner import parse_hp_options
    from fewshot.run import experiment

    overrides = parse_hp_options(hp)
    device_ = experiment.resolve_device(device)
    experiment.check_budget(budget, allow_untrained)  # a malformed or zero budget fails before any work
    bench = experiment.open_benchmark(
        dataset,
        protocol,
        data_root,
        source=source,
        target=target,
        target_labels=target_labels,
        select=select,
        val_images=val_images,
    )
    cell = experiment.resolve_training_cell(
        bench, protocol_words(ways, shots, queries, None, seed, kind, protocol_given)
    )
    setup = experiment.make_setup(learner, overrides, bench, cell, side, adapt, target_labels)
    setup.protocol.test_source(setup)  # a cell `fewshot eval` could never score (more ways than classes) fails here
    trained = experiment.ensure_trained(
        setup,
        experiment.default_budget(setup, budget, allow_untrained),
        device_,
        out=Path(out) if out else None,
        progress=not quiet,
        checkpoint_every=checkpoint_every,
        log=progress_lines(quiet),
    )
    if trained.checkpoint is None:
        click.echo(f"{learner} has nothing to train")
        return
    last = trained.outcome.history[-1] if trained.outcome and trained.outcome.history else {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "step")
    click.echo(f"trained {trained.steps} steps in {trained.seconds:.1f} s{'; ' + shown if shown else ''}")
    click.echo(f"checkpoint: {trained.checkpoint}")
