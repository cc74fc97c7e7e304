"""The ``fewshot`` command group and the options its commands share."""

from __future__ import annotations

import click

PERCENT = 100.0


def cell_options(fn):
    options = [
        click.option(
            "--dataset", default=None, help="Dataset (see `fewshot datasets`)  [default: the one that needs no files]"
        ),
        click.option("--protocol", default=None, help="Protocol of the dataset (default: the dataset's own)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of episodes and training."),
        click.option("--hp", multiple=True, metavar="NAME=VALUE", help="Override a hyperparameter (repeatable)."),
        click.option("--budget", default=None, help="Training budget: 500steps or 10min (default: the learner's)."),
        click.option(
            "--allow-untrained",
            is_flag=True,
            help="With --budget 0steps: score the untrained network (the run records 0 training steps).",
        ),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda."),
        click.option(
            "--data-root",
            default=None,
            type=click.Path(file_okay=False),
            help="Folder holding the raw datasets (default: $FEWSHOT_DATA).",
        ),
        click.option("--quiet", is_flag=True, help="No progress bars."),
        click.option(
            "--adapt",
            default="none",
            show_default=True,
            help="Domain adaptation method (see `fewshot learners`); none: source only.",
        ),
        click.option("--source", default=None, help="Source domain of a shift (see `fewshot datasets`)."),
        click.option("--target", default=None, help="Target domain of a shift: its images come unlabelled."),
        click.option(
            "--target-labels",
            type=int,
            default=0,
            show_default=True,
            help="Labelled target training images given to methods that use them (confusion).",
        ),
        click.option(
            "--select",
            default=None,
            metavar="REGIME",
            help="Score validation data instead of the test split, to make choices on: val-classes (few-shot and "
            "zero-shot protocols with validation classes), training-domain (uda, target-only) or oracle (uda); "
            "the run is recorded as a val run.",
        ),
        click.option(
            "--val-images",
            type=int,
            default=None,
            help="Images held out for --select training-domain or oracle  [default: 20% of their pool]",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def protocol_options(fn):
    """The options registered protocols bring: ``--KIND`` for a protocol chosen by its flag, and its own
    integer options (None when not given, so a protocol can tell "not said" from its default)."""
    from fewshot.core import registry

    for name in reversed(registry.names("protocol")):
        protocol = registry.protocol(name)
        for option, (default, text) in reversed(list(protocol.options.items())):
            fn = click.option(f"--{option}", type=int, default=None, help=f"{text}  [default: {default}]")(fn)
        if protocol.flag_help:
            fn = click.option(
                f"--{protocol.kind}", "kind", flag_value=protocol.kind, default=None, help=protocol.flag_help
            )(fn)
    return fn


def protocol_words(ways, shots, queries, episodes, seed, kind, given: dict):
    """The cell's words from the command line; an option of a protocol that is not chosen is refused."""
    from fewshot.core import registry
    from fewshot.core.errors import FewshotError
    from fewshot.core.protocol import Words

    options: dict = {}
    for name in registry.names("protocol"):
        protocol = registry.protocol(name)
        for option in protocol.options:
            if protocol.kind == kind:
                options[option] = given.get(option)
            elif given.get(option) is not None:
                how = f"add --{protocol.kind}" if protocol.flag_help else f"it belongs to {protocol.kind}"
                raise FewshotError(f"--{option} belongs to the {protocol.kind} protocol; {how}")
    return Words(ways, shots, queries, episodes, seed, kind, options)


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


def progress_lines(quiet: bool):
    """Progress lines on stderr (stdout stays for results, and for the one JSON line of --json)."""
    return (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fewshot")
def cli() -> None:
    """Few-shot and meta-learning benchmark suite: one sampler, many learners, one leaderboard."""
