"""``fewshot eval`` and ``fewshot train``."""
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
    per_instance_options,
    progress_lines,
)
from fewshot.core.errors import FewshotError


@cli.command("eval")
@click.option("--learner", required=True, help="Learner (see `fewshot learners`).")
@click.option("--ways", type=WAYS, default=None,
              help="Classes per episode, or all: every test class at once (zero-shot protocols' default).")
@click.option("--shots", type=int, default=None, help="Support images per class (0: zero-shot).")
@click.option("--side", default=None, help=SIDE_HELP)
@click.option("--queries", type=int, default=None, help="Query images per class  [default: 15]")
@click.option("--episodes", type=int, default=None, help="Test episodes  [default: 600]")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Evaluate this checkpoint instead of training (or reusing) one.")
@click.option("--results", type=click.Path(dir_okay=False), default=None,
              help="Results file (default: $FEWSHOT_RESULTS or the user's data folder).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@click.option("--no-embedding-cache", is_flag=True, help="Embed every episode's images anew (the plain path).")
@per_instance_options
@cell_options
def eval_command(learner, ways, shots, side, queries, episodes, checkpoint, results, as_json, no_embedding_cache,
                 per_instance, instances, dataset, protocol, seed, hp, budget, device, data_root, quiet, adapt, source,
                 target, target_labels):
    """Evaluate a learner on seeded test episodes and record the run.

    With no --checkpoint the learner is first trained with its default budget
    for the dataset (or --budget), and the checkpoint is cached by
    configuration, so a second run only evaluates.
    """
    from fewshot.core.learner import parse_hp_options
    from fewshot.core.paths import results_path
    from fewshot.records import store
    from fewshot.run import experiment, harness

    overrides = parse_hp_options(hp)
    results_file = results_path(results)
    store.check_writable(results_file)
    device_ = experiment.resolve_device(device)
    if budget:
        harness.Budget.parse(budget)  # a malformed budget fails before any work
    bench = experiment.open_benchmark(dataset, protocol, data_root, source=source, target=target,
                                      target_labels=target_labels)
    cell = _cell(experiment, bench, ways, shots, queries, episodes, seed, per_instance, instances)
    setup = experiment.make_setup(learner, overrides, bench, cell, side, adapt, target_labels)
    cell = setup.cell
    episodes_source = experiment.test_source(bench, cell, setup.side) if cell.mode in ("episodic", "per-instance") else None
    if checkpoint:
        trained = experiment.load_trained(setup, Path(checkpoint), device_)
    else:
        trained = experiment.ensure_trained(setup, experiment.default_budget(setup, budget), device_, progress=not quiet,
                                            log=progress_lines(quiet))
    if per_instance:
        from fewshot.protocols.per_instance import evaluate_sequences

        result = evaluate_sequences(trained.learner, episodes_source, cell.episodes, cell.shots, device_,
                                    progress=not quiet)
    else:
        result = experiment.evaluate_setup(setup, trained.learner, episodes_source, device_,
                                           use_cache=False if no_embedding_cache else None, progress=not quiet,
                                           log=progress_lines(quiet))
    run_id = store.ResultsStore(results_file).record(experiment.run_record(setup, trained, result, device_),
                                                      result.accuracies)
    if as_json:
        click.echo(json.dumps({"mean": round(result.mean * PERCENT, 4), "ci95": round(result.ci95 * PERCENT, 4),
                               "episodes": cell.episodes, "seconds": round(result.seconds, 3), "run_id": run_id,
                               "learner": learner, "dataset": cell.dataset, "protocol": cell.protocol,
                               "ways": cell.ways, "shots": cell.shots, "queries": cell.queries, "seed": cell.seed,
                               "episodes_per_s": round(result.episodes_per_s, 2), "train_steps": trained.steps,
                               "digest": result.digest, "mode": cell.mode,
                               **({"side": cell.side} if cell.side else {}),
                               **({"source": cell.source, "target": cell.target, "adapt": setup.adapt}
                                  if cell.source else {}),
                               **_presentation_json(result), **_zero_shot_json(result, setup)}))
        return
    mean, ci = result.mean * PERCENT, result.ci95 * PERCENT
    if per_instance:
        _print_presentations(learner, cell, result)
        click.echo(f"all steps: accuracy {mean:.2f}% ± {ci:.2f} (95% interval)")
    elif cell.mode == "all-classes":
        _print_all_classes(learner, cell, result)
    elif cell.mode == "images":
        _print_images(learner, setup, result)
    else:
        described = f", classes described by {cell.side}" if cell.side else ""
        click.echo(f"{learner} on {cell.dataset}/{cell.protocol}: {cell.ways}-way {cell.shots}-shot, "
                   f"{cell.queries} queries, {cell.episodes} episodes, seed {cell.seed}{described}")
        if bench.report == "error":
            from fewshot.leaderboard.papers import references_for

            refs = ", ".join(f"{who} {err:g}%" for who, err in references_for(cell.dataset, cell.protocol))
            click.echo(f"error rate {PERCENT - mean:.2f}% ± {ci:.2f} (accuracy {mean:.2f}%); published: {refs}")
        else:
            click.echo(f"accuracy {mean:.2f}% ± {ci:.2f} (95% interval)")
    rate = f", {result.episodes_per_s:.1f} episodes/s" if cell.mode != "all-classes" else ""
    click.echo(f"{result.seconds:.1f} s{rate}; trained {trained.steps} steps; run {run_id} in {results_file}")


def _cell(experiment, bench, ways, shots, queries, episodes, seed, per_instance, instances):
    if not per_instance:
        if instances is not None:
            raise FewshotError("--instances belongs to --per-instance; add --per-instance or use --shots")
        return experiment.resolve_cell(bench, ways, shots, queries, episodes, seed)
    for name, value in (("shots", shots), ("queries", queries)):
        if value is not None:
            raise FewshotError(f"--per-instance shows --instances images per class as one sequence; leave out --{name}")
    return experiment.resolve_sequence_cell(bench, ways, 10 if instances is None else instances, episodes, seed)


def _zero_shot_json(result, setup) -> dict:
    figures = {}
    if result.scores:
        figures.update({k: round(v * PERCENT, 4) for k, v in result.scores.items() if k not in ("mean", "ci95")})
    if setup.selection:
        figures["selected_on_val"] = setup.selection["chosen"]
    return figures


def _print_all_classes(learner, cell, result) -> None:
    from fewshot.leaderboard.papers import zero_shot_references

    click.echo(f"{learner} on {cell.dataset}/{cell.protocol}: all {cell.ways} test classes at once, described by "
               f"{cell.side}, seed {cell.seed}")
    scores = {k: v * PERCENT for k, v in result.scores.items()}
    if "harmonic" in scores:
        click.echo(f"seen S {scores['seen']:.2f}% ± {scores['seen_ci95']:.2f}, unseen U {scores['unseen']:.2f}% ± "
                   f"{scores['unseen_ci95']:.2f}, harmonic mean H {scores['harmonic']:.2f}% ± {scores['ci95']:.2f} "
                   f"(per-class mean accuracy, 95% intervals over classes)")
    else:
        click.echo(f"per-class mean accuracy {scores['mean']:.2f}% ± {scores['ci95']:.2f} (95% interval over classes)")
    for who, figure in zero_shot_references(cell.dataset, cell.protocol, learner):
        click.echo(f"published ({who}): {figure}")


def _print_images(learner, setup, result) -> None:
    from fewshot.leaderboard.papers import adaptation_references

    cell = setup.cell
    images = int(setup.bench.split("test").image_mask.sum())
    click.echo(f"{learner} --adapt {setup.adapt} on {cell.dataset}/{cell.protocol}: {cell.source} -> {cell.target}, "
               f"{images} {cell.target} test images in {cell.episodes} fixed batches, seed {cell.seed}")
    click.echo(f"accuracy {result.mean * PERCENT:.2f}% ± {result.ci95 * PERCENT:.2f} (95% binomial interval)")
    for who, figure in adaptation_references(cell.protocol, cell.source, cell.target, setup.adapt):
        click.echo(f"published ({who}): {figure}")


def _presentation_json(result) -> dict:
    if result.by_presentation is None:
        return {}
    means, intervals = result.presentation_summary()
    return {"presentation_accuracy": [round(float(v) * PERCENT, 4) for v in means],
            "presentation_ci95": [round(float(v) * PERCENT, 4) for v in intervals]}


def _print_presentations(learner, cell, result) -> None:
    from fewshot.leaderboard.papers import presentation_references

    figures = _presentation_json(result)
    shown = [k for k in (1, 2, 3, 4, 5, 10) if k <= cell.shots]
    click.echo(f"{learner} on {cell.dataset}/{cell.protocol}, per-instance: {cell.ways} classes x {cell.shots} instances, "
               f"{cell.episodes} sequences, seed {cell.seed}")
    click.echo("presentation      " + "".join(f"{k:>14}" for k in shown))
    click.echo("accuracy %        " + "".join(
        f"{figures['presentation_accuracy'][k - 1]:>7.1f} ± {figures['presentation_ci95'][k - 1]:<4.1f}" for k in shown))
    for who, values in presentation_references(cell.dataset, cell.ways, cell.shots):
        click.echo(f"{who:<18}" + "".join(f"{values[k]:>14.1f}" for k in shown if k in values))


@cli.command("train")
@click.option("--learner", required=True, help="Learner (see `fewshot learners`).")
@click.option("--ways", type=WAYS, default=None,
              help="Test-time ways (validation; some learners train on it)  [default: 5, all for zero-shot protocols]")
@click.option("--shots", type=int, default=None, help="Test-time shots  [default: 1, 0 for zero-shot protocols]")
@click.option("--side", default=None, help=SIDE_HELP)
@click.option("--queries", type=int, default=None, help="Queries per class in validation episodes  [default: 15]")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the checkpoint (default: the cache, where `fewshot eval` finds it).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Steps between partial checkpoints (a killed run resumes from the last).")
@per_instance_options
@cell_options
def train_command(learner, ways, shots, side, queries, out, checkpoint_every, per_instance, instances, dataset, protocol,
                  seed, hp, budget, device, data_root, quiet, adapt, source, target, target_labels):
    """Train a learner for a budget; a rerun of the same command resumes an interrupted training."""
    from fewshot.core.learner import parse_hp_options
    from fewshot.run import experiment

    overrides = parse_hp_options(hp)
    device_ = experiment.resolve_device(device)
    bench = experiment.open_benchmark(dataset, protocol, data_root, source=source, target=target,
                                      target_labels=target_labels)
    fixed = bench.fixed_cell
    if not per_instance and bench.scoring == "episodes":
        ways = ("all" if bench.zero_shot else 5) if ways is None else ways
        shots = (0 if bench.zero_shot else 1) if shots is None else shots
    if per_instance:
        cell = _cell(experiment, bench, ways, None, queries, None, seed, per_instance, instances)
    else:
        cell = _cell(experiment, bench, fixed.get("ways", ways), fixed.get("shots", shots), queries,
                     fixed.get("episodes"), seed, per_instance, instances)
    setup = experiment.make_setup(learner, overrides, bench, cell, side, adapt, target_labels)
    trained = experiment.ensure_trained(setup, experiment.default_budget(setup, budget), device_,
                                        out=Path(out) if out else None, progress=not quiet,
                                        checkpoint_every=checkpoint_every, log=progress_lines(quiet))
    if trained.checkpoint is None:
        click.echo(f"{learner} has nothing to train")
        return
    last = trained.outcome.history[-1] if trained.outcome and trained.outcome.history else {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "step")
    click.echo(f"trained {trained.steps} steps in {trained.seconds:.1f} s{'; ' + shown if shown else ''}")
    click.echo(f"checkpoint: {trained.checkpoint}")
