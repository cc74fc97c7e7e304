"""``fewshot learners`` and ``fewshot datasets``: what is registered."""

from __future__ import annotations

import click

from fewshot.cli.app import (
    cli,
)


@cli.command("learners")
def learners_command():
    """List the registered learners with family, paper and hyperparameters."""
    from fewshot.core import registry
    from fewshot.core.learner import describe_hparams

    for name in registry.names("learner"):
        cls = registry.learner(name)
        click.echo(f"{name}  [{cls.family}]  {cls.paper}")
        click.echo(f"    hyperparameters: {describe_hparams(cls) or 'none'}")
        budgets = ", ".join(f"{k}: {v}" for k, v in cls.default_budget.items())
        if cls.needs_support:
            support = "needs support images"
        else:
            reads = " or ".join(cls.reads_sides) or "class descriptions"
            support = f"zero-shot: reads {reads}; " + (
                "uses support images when given" if cls.uses_support else "ignores support images (--shots K)"
            )
        click.echo(f"    default budget: {budgets}; {support}")
        if cls.hparam_grid:
            click.echo(f"    chosen on the val classes unless fixed: {', '.join(cls.hparam_grid)}")
    _list_adaptations()


def _list_adaptations() -> None:
    from fewshot.core import registry
    from fewshot.core.learner import describe_hparams

    click.echo("")
    click.echo("domain adaptation methods (--adapt METHOD with --source and --target; --hp METHOD.NAME=VALUE):")
    for name in registry.names("adaptation"):
        cls = registry.adaptation(name)
        click.echo(f"{name}  {cls.paper}")
        needs = [
            text
            for flag, text in (
                (cls.needs_head, "a learner with a classifier of its training classes"),
                (not cls.changes_training, "no training change: the source-only checkpoint"),
                (cls.uses_target_labels, "uses --target-labels when given"),
                (cls.transductive, "transductive on test episodes"),
            )
            if flag
        ]
        click.echo(
            f"    hyperparameters: {describe_hparams(cls) or 'none'}" + (f"; {'; '.join(needs)}" if needs else "")
        )


def _list_import_formats() -> None:
    from fewshot.core import registry

    click.echo("")
    click.echo("import formats (fewshot data import FORMAT PATH --name NAME):")
    for name in registry.names("importer"):
        reader = registry.importer(name)
        options = ", ".join(f"--{option}" for option in reader.options)
        click.echo(f"{name}  {reader.summary}" + (f"  (options: {options})" if options else ""))


@cli.command("datasets")
@click.option("--data-root", default=None, type=click.Path(file_okay=False), help="Folder holding the raw datasets.")
def datasets_command(data_root):
    """List the datasets, registered and imported, their protocols and whether their files are present."""
    from fewshot.core import registry
    from fewshot.core.errors import FewshotError
    from fewshot.core.paths import data_root as resolve_root

    root = resolve_root(data_root)
    for name in registry.names("dataset") + registry.imported_datasets():
        try:
            source = registry.dataset(name)
        except FewshotError as err:  # one damaged import or broken plug-in must not hide the others
            click.echo(f"{name}  unreadable: {err}")
            continue
        present, status = source.status(root)
        click.echo(f"{name}  {source.summary}" + ("  [the default --dataset]" if source.default else ""))
        click.echo(f"    citation: {source.citation}")
        click.echo(f"    protocols: {', '.join(source.protocols)} (default {source.default_protocol})")
        described = "; ".join(f"{side}: {what}" for side, what in source.descriptions.items())
        click.echo(f"    class descriptions (zero-shot): {described or 'none'}")
        if source.domains:
            click.echo(f"    domains (--source, --target): {', '.join(source.domains)}")
        click.echo(f"    {'present' if present else 'absent'}: {status}")
    _list_import_formats()


@cli.command("protocols")
def protocols_command():
    """List the evaluation protocols: how each scores a benchmark cell, and how it is chosen."""
    from fewshot.core import registry

    for name in registry.names("protocol"):
        protocol = registry.protocol(name)
        chosen = f"with --{protocol.kind}" if protocol.flag_help else "by the dataset's protocol and the cell's options"
        options = ", ".join(f"--{option} (default {default})" for option, (default, _) in protocol.options.items())
        click.echo(f"{name}  {protocol.summary}")
        click.echo(f"    chosen {chosen}; scores each {protocol.unit}{'; options: ' + options if options else ''}")
