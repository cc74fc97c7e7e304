"""The ``fewshot`` command line.

Every error a user can cause ends in one line on stderr saying what is wrong
and how to fix it, exit status 2, and nothing written.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from fewshot.errors import FewshotError, Interrupted

PERCENT = 100.0


def _common_cell_options(fn):
    options = [
        click.option("--dataset", default="glyphs", show_default=True, help="Dataset (see `fewshot datasets`)."),
        click.option("--protocol", default=None, help="Protocol of the dataset (default: the dataset's own)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of episodes and training."),
        click.option("--hp", multiple=True, metavar="NAME=VALUE", help="Override a hyperparameter (repeatable)."),
        click.option("--budget", default=None, help="Training budget: 500steps or 10min (default: the learner's)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda."),
        click.option("--data-root", default=None, type=click.Path(file_okay=False),
                     help="Folder holding the raw datasets (default: $FEWSHOT_DATA)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
        click.option("--adapt", default="none", show_default=True,
                     help="Domain adaptation method (see `fewshot learners`); none: source only."),
        click.option("--source", default=None, help="Source domain of a shift (see `fewshot datasets`)."),
        click.option("--target", default=None, help="Target domain of a shift: its images come unlabelled."),
        click.option("--target-labels", type=int, default=0, show_default=True,
                     help="Labelled target training images given to methods that use them (confusion)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _per_instance_options(fn):
    fn = click.option("--instances", type=int, default=None,
                      help="With --per-instance: images of each class in a sequence  [default: 10]")(fn)
    return click.option("--per-instance", is_flag=True,
                        help="Santoro et al.'s protocol: --ways classes x --instances images as one labelled sequence, "
                             "scored by presentation.")(fn)


class WaysType(click.ParamType):
    """A number of classes, or ``all``: every class of the test split at once (zero-shot protocols)."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "all":
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a whole number nor 'all'", param, ctx)


WAYS = WaysType()
SIDE_HELP = "Class descriptions of zero-shot cells: attributes or text (see `fewshot datasets`)  [default: attributes]"


def _note(quiet: bool):
    """Progress lines on stderr (stdout stays for results, and for the one JSON line of --json)."""
    return (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fewshot")
def cli() -> None:
    """Few-shot and meta-learning benchmark suite: one sampler, many learners, one leaderboard."""


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
@_per_instance_options
@_common_cell_options
def eval_command(learner, ways, shots, side, queries, episodes, checkpoint, results, as_json, no_embedding_cache,
                 per_instance, instances, dataset, protocol, seed, hp, budget, device, data_root, quiet, adapt, source,
                 target, target_labels):
    """Evaluate a learner on seeded test episodes and record the run.

    With no --checkpoint the learner is first trained with its default budget
    for the dataset (or --budget), and the checkpoint is cached by
    configuration, so a second run only evaluates.
    """
    from fewshot import experiment, harness, store
    from fewshot.learner import parse_hp_options
    from fewshot.paths import results_path

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
                                            log=_note(quiet))
    if per_instance:
        from fewshot.sequences import evaluate_sequences

        result = evaluate_sequences(trained.learner, episodes_source, cell.episodes, cell.shots, device_,
                                    progress=not quiet)
    else:
        result = experiment.evaluate_setup(setup, trained.learner, episodes_source, device_,
                                           use_cache=False if no_embedding_cache else None, progress=not quiet,
                                           log=_note(quiet))
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
@_per_instance_options
@_common_cell_options
def train_command(learner, ways, shots, side, queries, out, checkpoint_every, per_instance, instances, dataset, protocol,
                  seed, hp, budget, device, data_root, quiet, adapt, source, target, target_labels):
    """Train a learner for a budget; a rerun of the same command resumes an interrupted training."""
    from fewshot import experiment
    from fewshot.learner import parse_hp_options

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
                                        checkpoint_every=checkpoint_every, log=_note(quiet))
    if trained.checkpoint is None:
        click.echo(f"{learner} has nothing to train")
        return
    last = trained.outcome.history[-1] if trained.outcome and trained.outcome.history else {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "step")
    click.echo(f"trained {trained.steps} steps in {trained.seconds:.1f} s{'; ' + shown if shown else ''}")
    click.echo(f"checkpoint: {trained.checkpoint}")


@cli.command("learners")
def learners_command():
    """List the registered learners with family, paper and hyperparameters."""
    from fewshot import registry
    from fewshot.learner import describe_hparams

    for name in registry.names("learner"):
        cls = registry.learner(name)
        click.echo(f"{name}  [{cls.family}]  {cls.paper}")
        click.echo(f"    hyperparameters: {describe_hparams(cls) or 'none'}")
        budgets = ", ".join(f"{k}: {v}" for k, v in cls.default_budget.items())
        if cls.needs_support:
            support = "needs support images"
        else:
            reads = " or ".join(cls.reads_sides) or "class descriptions"
            support = (f"zero-shot: reads {reads}; " +
                       ("uses support images when given" if cls.uses_support else "ignores support images (--shots K)"))
        click.echo(f"    default budget: {budgets}; {support}")
        if cls.hparam_grid:
            click.echo(f"    chosen on the val classes unless fixed: {', '.join(cls.hparam_grid)}")
    _list_adaptations()


def _list_adaptations() -> None:
    from fewshot import registry
    from fewshot.learner import describe_hparams

    click.echo("")
    click.echo("domain adaptation methods (--adapt METHOD with --source and --target; --hp METHOD.NAME=VALUE):")
    for name in registry.names("adaptation"):
        cls = registry.adaptation(name)
        click.echo(f"{name}  {cls.paper}")
        needs = [text for flag, text in ((cls.needs_head, "a learner with a classifier of its training classes"),
                                         (not cls.changes_training, "no training change: the source-only checkpoint"),
                                         (cls.uses_target_labels, "uses --target-labels when given"),
                                         (cls.transductive, "transductive on test episodes")) if flag]
        click.echo(f"    hyperparameters: {describe_hparams(cls) or 'none'}" + (f"; {'; '.join(needs)}" if needs else ""))


@cli.command("datasets")
@click.option("--data-root", default=None, type=click.Path(file_okay=False), help="Folder holding the raw datasets.")
def datasets_command(data_root):
    """List the datasets, their protocols and whether their files are present."""
    from fewshot import registry
    from fewshot.paths import data_root as resolve_root

    root = resolve_root(data_root)
    for name in registry.names("dataset"):
        source = registry.dataset(name)
        present, status = source.status(root)
        click.echo(f"{name}  {source.summary}")
        click.echo(f"    protocols: {', '.join(source.protocols)} (default {source.default_protocol})")
        described = "; ".join(f"{side}: {what}" for side, what in getattr(source, "descriptions", {}).items())
        click.echo(f"    class descriptions (zero-shot): {described or 'none'}")
        click.echo(f"    {'present' if present else 'absent'}: {status}")


@cli.group("data")
def data_group():
    """Manage raw datasets."""


@data_group.command("fetch")
@click.argument("dataset")
@click.option("--data-root", default=None, type=click.Path(file_okay=False), help="Where to put the files.")
@click.option("--mirror", default=None, help="Base URL to download from instead of the official release.")
def fetch_command(dataset, data_root, mirror):
    """Download a dataset's official release, checking every file's md5."""
    from fewshot import fetch
    from fewshot.paths import data_root as resolve_root

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
    from fewshot import experiment, studies

    bench = experiment.open_benchmark(dataset, protocol, data_root)
    if bench.split("train") is None or bench.data.is_features:
        raise FewshotError(f"{dataset}/{bench.protocol} has no training classes of images to split in two")
    out = _study_folder(out)
    rows = studies.transfer_study(bench, steps, seed, log=_note(quiet))
    name = f"transfer-{dataset}"
    studies.write_csv(out / f"{name}.csv", rows)
    studies.plot_transfer(out / f"{name}.png", rows, f"{dataset}: halves A and B of the training classes\n"
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
    from fewshot import experiment, studies

    try:
        counts = tuple(int(v) for v in labelled.split(","))
    except ValueError:
        raise FewshotError(f"--labelled {labelled!r}: write whole numbers separated by commas, like 10,100,1000") from None
    if not counts or min(counts) < 1:
        raise FewshotError(f"--labelled {labelled!r}: every number must be at least 1")
    bench = experiment.open_benchmark(dataset, "uda", data_root, source=source, target=target)  # digits' protocol
    out = _study_folder(out)
    rows = studies.freeze_study(bench, steps, counts, seed, log=_note(quiet))
    name = f"freeze-{source}-{target}"
    studies.write_csv(out / f"{name}.csv", rows)
    studies.plot_freeze(out / f"{name}.png", rows, f"{source} -> {target}: {steps} steps per network")
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


@cli.command("leaderboard")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "html"]), default="md", show_default=True)
@click.option("--results", type=click.Path(dir_okay=False), default=None, help="Results file.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write to this file instead of stdout.")
def leaderboard_command(fmt, results, output):
    """One row per learner and benchmark cell: mean ± 95% interval beside the paper's number."""
    from fewshot.data import atomic_write
    from fewshot.leaderboard.table import render
    from fewshot.paths import results_path
    from fewshot.store import ResultsStore

    text = render(ResultsStore(results_path(results)).runs(), fmt)
    if output:
        atomic_write(Path(output), lambda f: f.write(text.encode()))
    else:
        click.echo(text, nl=False)


@cli.command("compare")
@click.argument("run_a", type=int)
@click.argument("run_b", type=int)
@click.option("--results", type=click.Path(dir_okay=False), default=None, help="Results file.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON line.")
def compare_command(run_a, run_b, results, as_json):
    """Paired difference of two runs on identical episodes (A minus B), with its 95% interval."""
    from fewshot.leaderboard.table import compare
    from fewshot.paths import results_path
    from fewshot.store import ResultsStore

    found = ResultsStore(results_path(results))
    outcome = compare(found.run(run_a), found.run(run_b))
    if as_json:
        click.echo(json.dumps(outcome))
        return
    click.echo(f"run {run_a} ({outcome['a']}) minus run {run_b} ({outcome['b']}) on {outcome['episodes']} identical episodes:")
    click.echo(f"difference {outcome['difference']:+.2f} points ± {outcome['ci95']:.2f} (95% interval); "
               f"{outcome['verdict']}")


def main(argv: list[str] | None = None) -> None:
    from fewshot.runtime import tune_allocator

    tune_allocator()
    try:
        code = cli.main(args=argv, prog_name="fewshot", standalone_mode=False)
    except Interrupted as err:
        click.echo(f"{err}", err=True)
        sys.exit(130)
    except FewshotError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.UsageError as err:
        command = err.ctx.command_path if err.ctx is not None else "fewshot"
        click.echo(f"error: {err.format_message()} (see `{command} --help`)", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
