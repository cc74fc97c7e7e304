"""From a command line's words to a trained learner and a recorded result.

Everything that can be checked is checked here before anything is trained or
written: the learner, its hyperparameters, the dataset and its files, the
benchmark cell, the checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import fewshot
from fewshot.core import registry, selection
from fewshot.core.data import Benchmark, cache_key
from fewshot.core.episode import LabelledImages
from fewshot.core.errors import FewshotError
from fewshot.core.learner import EpisodeBatches, ImageBatches, Learner, TaskSpec, resolve_hparams
from fewshot.core.locks import cache_lock
from fewshot.core.paths import cache_dir, data_root
from fewshot.core.protocol import Cell, Protocol, Words, check_memory, choose
from fewshot.core.sampler import EpisodeSampler, EpisodeSource, FixedSampler, ImagePool
from fewshot.core.sampler import ImageBatches as ImageBatchSampler
from fewshot.run import checkpoint
from fewshot.run.evaluation import EvalResult, embed_items, evaluate_all_classes
from fewshot.run.training import Budget, TrainOutcome, train

if TYPE_CHECKING:
    from fewshot.core.adaptation import Adaptation

MIN_VALIDATE_EVERY = 25


def open_benchmark(
    dataset: str | None,
    protocol: str | None,
    root: str | Path | None = None,
    size: int = 28,
    source: str | None = None,
    target: str | None = None,
    target_labels: int = 0,
    select: str | None = None,
    val_images: int | None = None,
) -> Benchmark:
    """The dataset's benchmark under ``protocol`` (the default dataset's if ``dataset`` is None);
    ``source``/``target`` name the domains of a shift. With ``select``, the benchmark as that model-selection
    regime sees it (``fewshot.core.selection``: validation data in place of the test split)."""
    if val_images is not None and not select:
        raise FewshotError(
            f"--val-images {val_images} sizes the held-out images of --select training-domain or oracle: add --select"
        )
    bench = _benchmark(dataset, protocol, root, size, source, target, target_labels)
    return selection.view(bench, select, val_images) if select else bench


def _benchmark(
    dataset: str | None,
    protocol: str | None,
    root: str | Path | None,
    size: int,
    source: str | None,
    target: str | None,
    target_labels: int,
) -> Benchmark:
    dataset = dataset or registry.default_dataset()
    found = registry.dataset(dataset)
    protocol = protocol or found.default_protocol
    if protocol not in found.protocols:
        raise FewshotError(f"unknown {dataset} protocol {protocol!r}: choose one of {', '.join(found.protocols)}")
    domains = found.domains
    if not domains:
        if source or target or target_labels:
            named = "--source/--target" if source or target else "--target-labels"
            raise FewshotError(
                f"{dataset} has no domains, so {named} mean nothing: domain shifts are in "
                f"{', '.join(_datasets_with_domains()) or 'no installed dataset'}"
            )
        return found.benchmark(protocol, data_root(root), size)
    if target_labels < 0:
        raise FewshotError(f"--target-labels must be zero or positive, got {target_labels}")
    return found.benchmark(protocol, data_root(root), size, source=source, target=target, target_labels=target_labels)


def _datasets_with_domains() -> list[str]:
    return [name for name in registry.names("dataset") if registry.dataset_class(name).domains]


def resolve_cell(
    bench: Benchmark,
    ways: int | str | None = None,
    shots: int | None = None,
    queries: int | None = None,
    episodes: int | None = None,
    seed: int = 0,
    kind: str | None = None,
    **options: int | None,
) -> Cell:
    """The benchmark cell these words name, resolved by the protocol that scores them (``kind``, else the one
    that matches); ``options`` are the chosen protocol's own (``instances`` of ``per-instance``)."""
    words = Words(ways, shots, queries, episodes, seed, kind, options)
    return _scored_split(bench, choose(bench, words).resolve(bench, words))


def resolve_training_cell(bench: Benchmark, words: Words) -> Cell:
    """The cell ``fewshot train`` trains for: the protocol's defaults for what the words leave out."""
    protocol = choose(bench, words)
    return _scored_split(bench, protocol.resolve(bench, protocol.training_words(bench, words)))


def _scored_split(bench: Benchmark, cell: Cell) -> Cell:
    """A selection view scores its validation split, which it holds under ``val`` (and under ``test``, for the
    protocols' checks of a cell); the cell names ``val``, so that the run is recorded as a validation run."""
    return dataclasses.replace(cell, split="val") if bench.selection else cell


def test_source(bench: Benchmark, cell: Cell, side: torch.Tensor | None = None) -> EpisodeSource:
    if cell.split in bench.fixed:
        source = FixedSampler(bench.data, bench.fixed[cell.split])
        if cell.episodes > len(source):
            raise FewshotError(f"{bench.dataset}/{bench.protocol} has {len(source)} fixed episodes; lower --episodes")
        return source
    split = bench.split(cell.split)
    if split is None:
        raise FewshotError(f"{bench.dataset}/{bench.protocol} has no {cell.split} split")
    sampler = EpisodeSampler(
        bench.data,
        split,
        cell.ways,
        cell.shots,
        cell.queries,
        cell.seed,
        role="test",
        name=f"the {bench.dataset}/{bench.protocol} {cell.split} split",
        side=side,
    )
    check_memory(cell, tuple(bench.data.image_shape))  # after the sampler's checks: the cell fits the split
    return sampler


@dataclass
class Setup:
    """A learner class with resolved hyperparameters, on one benchmark cell."""

    name: str
    cls: type[Learner]
    hp: dict[str, Any]
    bench: Benchmark
    cell: Cell
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    side: torch.Tensor | None = None  # [dataset classes, D]: the descriptions named by cell.side
    selection: dict[str, Any] = dataclasses.field(default_factory=dict)  # hyperparameters chosen on val, and why
    adapt: str = "none"  # the domain adaptation method (--adapt) and its hyperparameters
    adapt_hp: dict[str, Any] = dataclasses.field(default_factory=dict)
    target_labels: int = 0

    @property
    def protocol(self) -> Protocol:
        return registry.protocol(self.cell.kind)()

    @property
    def adapt_cls(self) -> type[Adaptation] | None:
        return None if self.adapt == "none" else registry.adaptation(self.adapt)

    @property
    def adapts_training(self) -> bool:
        return self.adapt_cls is not None and self.adapt_cls.changes_training

    @property
    def task(self) -> TaskSpec:
        train_split = self.bench.split("train")
        return TaskSpec(
            self.cell.dataset,
            self.cell.protocol,
            tuple(self.bench.data.image_shape),
            self.cell.ways,
            self.cell.shots,
            self.cell.queries,
            len(train_split) if train_split is not None else 0,
            self.cell.side,
            0 if self.side is None else int(self.side.shape[1]),
            self.bench.network,
            self.bench.pixel_mean,
        )

    def training_config(self, budget: Budget) -> dict[str, Any]:
        """Everything training depends on: two equal configurations give the same checkpoint."""
        return {
            "learner": self.name,
            "hparams": {k: v for k, v in self.hp.items() if k not in self.cls.eval_hparams},
            "dataset": self.cell.dataset,
            "protocol": self.cell.protocol,
            "cell": {k: getattr(self.cell, k) for k in self.cls.trains_on},
            "seed": self.cell.seed,
            "budget": str(budget),
            "image_shape": list(self.bench.data.image_shape),
            "fewshot": fewshot.__version__,
            **({"domains": [self.cell.source, self.cell.target]} if self.cell.source else {}),
            # A selection view trains on less (training classes without the validation ones, or images held out).
            **({"selection": self.bench.notes} if self.bench.selection else {}),
            **(
                {"adapt": self.adapt, "adapt_hparams": self.adapt_hp, "target_labels": self.target_labels}
                if self.adapts_training
                else {}
            ),
        }


def make_setup(
    learner: str,
    overrides: dict[str, str],
    bench: Benchmark,
    cell: Cell,
    side: str | None = None,
    adapt: str = "none",
    target_labels: int = 0,
) -> Setup:
    cls = registry.learner(learner)
    adapt_hp = resolve_adaptation(
        adapt, {k: v for k, v in overrides.items() if "." in k}, bench, cls, learner, target_labels
    )
    overrides = {k: v for k, v in overrides.items() if "." not in k}  # the learner's own: METHOD.NAME are the method's
    hp = resolve_hparams(cls, overrides, learner)
    registry.protocol(cell.kind)().check(learner, cls, cell)
    if bench.data.is_features and not cls.reads_sides:
        raise FewshotError(f"{bench.dataset} holds precomputed image features, not images: choose a zero-shot learner")
    cell = dataclasses.replace(cell, side=resolve_side(bench, learner, cls, cell, side))
    table = None
    if cell.side:
        assert bench.describe is not None, "resolve_side names only sides the benchmark describes"
        table = bench.describe(cell.side)
    return Setup(
        learner,
        cls,
        hp,
        bench,
        cell,
        {k: hp[k] for k in overrides},
        table,
        adapt=adapt,
        adapt_hp=adapt_hp,
        target_labels=target_labels,
    )


def resolve_adaptation(
    adapt: str, overrides: dict[str, str], bench: Benchmark, cls: type[Learner], learner: str, target_labels: int
) -> dict[str, Any]:
    """The adaptation method's hyperparameters (``--hp METHOD.NAME=VALUE``), after checking it fits the cell."""
    for key in overrides:
        if key.split(".", 1)[0] != adapt:
            method = key.split(".", 1)[0]
            raise FewshotError(
                f"--hp {key}: {method!r} is not the adaptation of this run (--adapt {adapt}); "
                f"name the learner's hyperparameters without a prefix"
            )
    if adapt == "none":
        if target_labels:
            raise FewshotError("--target-labels gives labelled target images to an adaptation method: add --adapt")
        return {}
    method = registry.adaptation(adapt)
    if not bench.target:
        raise FewshotError(
            f"--adapt {adapt} needs a domain shift: pass --source and --target of a dataset with "
            f"domains ({', '.join(_datasets_with_domains())})"
        )
    if bench.split("target") is None:
        raise FewshotError(
            f"{bench.dataset}/{bench.protocol} has no unlabelled target images to adapt to (it trains "
            f"on labelled target images): leave out --adapt"
        )
    if target_labels and not method.uses_target_labels:
        users = [n for n in registry.names("adaptation") if registry.adaptation(n).uses_target_labels]
        raise FewshotError(
            f"{adapt} does not use labelled target images: leave out --target-labels or choose {', '.join(users)}"
        )
    if target_labels and not cls.classifies():
        raise FewshotError(
            f"--target-labels needs a learner with a classifier over its training classes, "
            f"which {learner} has not (see `fewshot learners`)"
        )
    if method.needs_head and not cls.classifies():
        raise FewshotError(
            f"{adapt} reads the classifier's outputs, and {learner} has no classifier over its "
            f"training classes: choose a learner with one (see `fewshot learners`), or another method"
        )
    return resolve_hparams(method, {k.split(".", 1)[1]: v for k, v in overrides.items()}, adapt, prefix=f"{adapt}.")


def resolve_side(bench: Benchmark, name: str, cls: type[Learner], cell: Cell, side: str | None) -> str:
    """Which class descriptions the episodes carry: ``--side``, else attributes for a zero-shot cell or learner."""
    wants = bool(cls.reads_sides) or registry.protocol(cell.kind)().wants_sides(cell)
    if not wants:
        if side is not None:
            raise FewshotError(f"{name} does not read class descriptions; leave out --side")
        return ""
    if not bench.sides:
        raise FewshotError(
            f"{bench.dataset} has no class descriptions, so no zero-shot cell: choose a dataset "
            f"that has them (see `fewshot datasets`)"
        )
    side = side or ("attributes" if "attributes" in bench.sides else bench.sides[0])
    if side not in bench.sides:
        raise FewshotError(f"--side {side}: {bench.dataset} describes its classes by {', '.join(bench.sides)}")
    if cls.reads_sides and side not in cls.reads_sides:
        raise FewshotError(
            f"{name} reads only {' or '.join(cls.reads_sides)} descriptions, not {side}: "
            f"pass --side {cls.reads_sides[0]}"
        )
    return side


def build(setup: Setup, device: torch.device, budget: Budget | None = None) -> Learner:
    """The learner of the setup, freshly initialised; wrapped in its adaptation method if ``--adapt`` is on
    (whose schedules run over ``budget``'s steps)."""
    torch.manual_seed(setup.cell.seed)  # parameter initialisation is part of the run's seed
    try:
        learner = setup.cls(setup.task, setup.hp)
    except FewshotError:
        raise
    except (ValueError, TypeError) as err:
        raise FewshotError(f"{setup.name} cannot be built with {setup.hp}: {err}") from None
    if setup.adapt_cls is not None:
        learner = _adapted(setup, learner, budget, device)
    return learner.to(device)


def _adapted(setup: Setup, learner: Learner, budget: Budget | None, device: torch.device) -> Learner:
    from fewshot.run.adapted import Adapted, adaptable

    if not adaptable(learner):
        raise FewshotError(
            f"{setup.name} has no backbone module for --adapt {setup.adapt} to adapt (its network is "
            f"adapted inside its own inner loop); choose a learner with one "
            f"(see `fewshot learners`)"
        )
    if setup.adapts_training and (budget is None or budget.steps is None):
        raise FewshotError(
            f"--adapt {setup.adapt} schedules its training over a number of steps: give --budget "
            f"in steps (such as 3000steps)"
        )
    head = getattr(learner, "head", None)
    classes = learner.task.train_classes
    backbone, adapt_cls = learner.backbone, setup.adapt_cls
    assert isinstance(backbone, torch.nn.Module) and adapt_cls is not None, "checked above: adaptable, and --adapt"
    widths = feature_widths(backbone, setup.task.image_shape)
    adaptation = adapt_cls(
        widths[0],
        classes if head is not None else 0,
        setup.adapt_hp,
        budget.steps if budget is not None and budget.steps else 0,
        extracted=widths[1],
    )
    target = setup.bench.required_split("target")
    pool = ImageBatchSampler(setup.bench.data, target, ADAPTATION_BATCH, setup.cell.seed, role="target")

    def target_images():  # every unlabelled target training image once, in batches, for AdaBN's statistics
        for step in range(-(-len(pool.items) // ADAPTATION_BATCH)):
            yield pool[step].x.to(device)

    try:
        return Adapted(learner, setup.adapt, adaptation, ADAPTATION_BATCH, setup.target_labels, target_images)
    except ValueError as err:
        raise FewshotError(f"--adapt {setup.adapt} cannot adapt {setup.name}: {err}") from None


ADAPTATION_BATCH = 64  # unlabelled target images per training step


def feature_widths(backbone: torch.nn.Module, image_shape: tuple[int, ...]) -> tuple[int, int]:
    """The widths of the backbone's output and of its marked feature extractor's (0 if it marks none)."""
    seen = []
    extractor = getattr(backbone, "extractor_end", None)
    hook = (
        backbone.get_submodule(extractor).register_forward_hook(
            lambda module, args, out: seen.append(out.flatten(1).shape[1])
        )
        if extractor
        else None
    )
    was_training = backbone.training
    with torch.no_grad():
        out = backbone.eval()(torch.zeros(2, *image_shape))
    backbone.train(was_training)
    if hook is not None:
        hook.remove()
    return int(out.shape[1]), (seen[0] if seen else 0)


def check_budget(budget: str | None, allow_untrained: bool = False) -> Budget | None:
    """The ``--budget`` given, checked before any work (None if none): at least one step, since an untrained run is
    not a result, unless ``allow_untrained`` asks for ``0steps`` explicitly (the run records 0 steps)."""
    if allow_untrained and (not budget or Budget.parse(budget).steps != 0):
        raise FewshotError("--allow-untrained goes with --budget 0steps: add it, or leave out --allow-untrained")
    if not budget:
        return None
    given = Budget.parse(budget)
    if given.steps == 0 and not allow_untrained:
        raise FewshotError(
            f"--budget {budget!r}: train for at least 1 step (an untrained run is not a result), "
            f"or add --allow-untrained to score the untrained network"
        )
    return given


def default_budget(setup: Setup, budget: str | None, allow_untrained: bool = False) -> Budget:
    """The ``--budget`` given (see ``check_budget``), else the learner's own."""
    given = check_budget(budget, allow_untrained)
    if given is not None:
        return given
    defaults = setup.cls.default_budget
    return Budget.parse(defaults.get(setup.cell.dataset, defaults.get("*", "1000steps")))


def cached_checkpoint(config: dict[str, Any]) -> Path:
    key = cache_key(**config)
    return cache_dir() / "checkpoints" / f"{config['learner']}-{config['dataset']}-{config['protocol']}-{key}.pt"


def batches_for(setup: Setup, learner: Learner) -> Callable[[int], Any] | None:
    spec = learner.train_batches()
    if spec is None:
        return None
    from fewshot.run.adapted import AdaptationBatch, AdaptationBatches

    if isinstance(spec, AdaptationBatches):
        source_at = _source_batches(setup, spec.source)
        data, seed = setup.bench.data, setup.cell.seed
        # Target images go to training without their labels: only ``.x`` of the target batches is kept.
        target = ImageBatchSampler(data, setup.bench.required_split("target"), spec.target_batch, seed, role="target")
        labelled = None
        if spec.labelled:
            labelled = ImageBatchSampler(
                data,
                setup.bench.required_split("target_labelled"),
                min(spec.labelled, spec.target_batch),
                seed,
                role="target-labelled",
            )
        return lambda step: AdaptationBatch(
            source_at(step), target[step].x, labelled[step] if labelled is not None else None
        )
    return _source_batches(setup, spec)


def _source_batches(setup: Setup, spec: Any) -> Callable[[int], Any]:
    split = setup.bench.split("train")
    if split is None:
        raise FewshotError(f"{setup.cell.dataset}/{setup.cell.protocol} has no training split")
    if isinstance(spec, EpisodeBatches):
        name = f"the {setup.cell.dataset}/{setup.cell.protocol} train split"
        try:
            sampler = EpisodeSampler(
                setup.bench.data, split, spec.ways, spec.shots, spec.queries, setup.cell.seed, role="train", name=name
            )
        except FewshotError:
            # the sampler's advice names --ways/--shots/--queries, the test episodes' flags: these are the learner's
            raise FewshotError(
                f"{name} cannot give {setup.name}'s training episodes ({spec.ways}-way, {spec.shots} shots and "
                f"{spec.queries} queries per class): too few classes or images; set smaller ones with --hp "
                f"(`fewshot learners` lists {setup.name}'s hyperparameters)"
            ) from None
        return lambda step: [sampler[step * spec.meta_batch + j] for j in range(spec.meta_batch)]
    if isinstance(spec, ImageBatches):
        return ImageBatchSampler(
            setup.bench.data, split, spec.batch_size, setup.cell.seed, augment=spec.augment
        ).__getitem__
    raise FewshotError(f"{setup.name}.train_batches returned {spec!r}; expected EpisodeBatches, ImageBatches or None")


def validator(setup: Setup, learner: Learner, device: torch.device) -> Callable[[], float] | None:
    """Validation accuracy during training, as the cell's protocol measures it on the val split (or none)."""
    return setup.protocol.validator(setup, learner, device)


@dataclass
class Trained:
    learner: Learner
    checkpoint: Path | None
    budget: str | None
    steps: int
    seconds: float
    outcome: TrainOutcome | None = None


def load_trained(setup: Setup, path: Path, device: torch.device) -> Trained:
    """A learner restored from an explicit checkpoint; its training hyperparameters win over the defaults."""
    payload = checkpoint.load(path, learner=setup.name)
    if not payload.get("complete", False):
        raise FewshotError(
            f"checkpoint {path} is from an unfinished training (step {payload.get('step')}); "
            f"finish it with the `fewshot train` command that wrote it"
        )
    trained_hp = payload.get("hparams", {})
    for name, value in setup.overrides.items():
        if name not in setup.cls.eval_hparams and name in trained_hp and trained_hp[name] != value:
            raise FewshotError(
                f"--hp {name}={value} changes training, but {path} was trained with {name}={trained_hp[name]}"
            )
    setup.hp = {**setup.hp, **{k: v for k, v in trained_hp.items() if k in setup.hp}, **setup.overrides}
    config = payload.get("config", {})
    if setup.adapts_training and (config.get("adapt"), config.get("domains")) != (
        setup.adapt,
        [setup.cell.source, setup.cell.target],
    ):
        raise FewshotError(
            f"checkpoint {path} was trained with --adapt {config.get('adapt', 'none')} on "
            f"{config.get('domains')}, not --adapt {setup.adapt} on {[setup.cell.source, setup.cell.target]}"
        )
    learner = build(setup, device, Budget.parse(config["budget"]) if config.get("budget") else None)
    checkpoint.restore(learner, payload, path)
    return Trained(
        learner, path, payload.get("config", {}).get("budget"), int(payload["step"]), float(payload["elapsed"])
    )


def ensure_trained(
    setup: Setup,
    budget: Budget,
    device: torch.device,
    out: Path | None = None,
    progress: bool = True,
    checkpoint_every: int = 500,
    log: Callable[[str], None] = lambda line: None,
) -> Trained:
    """Train (or resume, or reuse the cached result of) the configuration; return the trained learner.

    Processes training the same configuration at once (sweep workers) take turns: the second finds the first's
    checkpoint and only loads it.
    """
    config = checkpoint_config(setup, budget, device)
    path = Path(out) if out is not None else cached_checkpoint(config)
    # Only the cache gets a lock file: a user's --out stands alone in its folder.
    with cache_lock(path) if out is None else contextlib.nullcontext():
        return _ensure_trained(setup, budget, device, config, path, out, progress, checkpoint_every, log)


def checkpoint_config(setup: Setup, budget: Budget, device: torch.device) -> dict[str, Any]:
    """The configuration a checkpoint is trained for: two equal ones give the same weights, bit for bit."""
    return {**setup.training_config(budget), "arithmetic": arithmetic(device)}


def arithmetic(device: torch.device) -> str:
    """What a trained checkpoint's floating-point results depend on beyond its configuration.

    CPU reductions are split across torch's intra-op threads, so the same seed trained with one thread and with two
    gives weights that differ in the last bits, and after thousands of steps, accuracies that differ. A cached
    checkpoint is therefore reused only by a run on the same kind of device with the same thread count.
    """
    if device.type == "cpu":
        return f"cpu/{torch.get_num_threads()} threads"
    return device.type


def _ensure_trained(
    setup: Setup,
    budget: Budget,
    device: torch.device,
    config: dict[str, Any],
    path: Path,
    out: Path | None,
    progress: bool,
    checkpoint_every: int,
    log: Callable[[str], None],
) -> Trained:
    partial = path.with_name(path.name + ".partial")
    learner = build(setup, device, budget)
    batch_at = batches_for(setup, learner)
    if batch_at is None:
        return Trained(learner, None, None, 0, 0.0)
    # a damaged cache entry is trained anew (saying so); a damaged --out is refused
    read = checkpoint.load if out is not None else checkpoint.load_cached
    if path.exists():
        payload = read(path, setup.name)
        if payload.get("complete") and payload.get("config") == config:
            checkpoint.restore(learner, payload, path)
            log(f"using the checkpoint trained for this configuration: {path}")
            return Trained(learner, path, str(budget), int(payload["step"]), float(payload["elapsed"]))
        if out is not None:
            raise FewshotError(f"{path} already holds a checkpoint of {_other(payload, config)}; choose another --out")
    resume, where = None, "no checkpoint for this configuration yet"
    if partial.exists() and (payload := read(partial, setup.name)):
        if payload.get("config") != config:
            raise FewshotError(
                f"{partial} holds an unfinished training of {_other(payload, config)}; "
                "move it away or choose another --out"
            )
        checkpoint.restore(learner, payload, partial)
        resume, where = payload, f"resuming at step {payload['step']}"
    elif (
        out is None and not setup.adapts_training and (shorter := _shorter_cached_training(config, budget)) is not None
    ):
        shorter_path, payload = shorter
        checkpoint.restore(learner, payload, shorter_path)
        resume, where = payload, f"continuing the {payload['config']['budget']} checkpoint {shorter_path.name}"
    log(
        f"training {setup.name} on {setup.cell.dataset}/{setup.cell.protocol} for {budget} ({where}); "
        f"checkpoint: {path}"
    )

    def save(progress_state: dict[str, Any], complete: bool) -> None:
        payload = {"learner": setup.name, "hparams": setup.hp, "config": config, "complete": complete, **progress_state}
        checkpoint.save(path if complete else partial, payload)
        if complete and partial.exists():
            partial.unlink()

    outcome = train(
        learner,
        batch_at,
        budget,
        save_checkpoint=save,
        device=device,
        validate=validator(setup, learner, device),
        # About four validations a training, never more often than every 25 steps: a smoke-sized budget
        # validates once, at its end, rather than after every step.
        validate_every=max(MIN_VALIDATE_EVERY, min(500, (budget.steps or 10**9) // 4)),
        checkpoint_every=checkpoint_every,
        resume=resume,
        progress=progress,
    )
    return Trained(learner, path, str(budget), outcome.steps, outcome.seconds, outcome)


def _other(payload: dict[str, Any], config: dict[str, Any]) -> str:
    """Name what differs when only the arithmetic does, so a resume on other threads says how to match it."""
    theirs = payload.get("config") or {}
    if {**theirs, "arithmetic": config["arithmetic"]} == config:
        return f"this configuration trained on {theirs.get('arithmetic', 'another device')} (run it with the same)"
    return "another configuration"


def _shorter_cached_training(config: dict[str, Any], budget: Budget) -> tuple[Path, dict[str, Any]] | None:
    """The longest finished cached training of this configuration with fewer steps, if any.

    No learner sees its budget and batch ``t`` depends on t alone, so training
    N steps and continuing to M gives the weights of an M-step run: a longer
    budget extends the cached shorter one instead of starting over.
    """
    if budget.steps is None:
        return None
    best = None
    folder = cache_dir() / "checkpoints"
    for path in sorted(folder.glob(f"{config['learner']}-{config['dataset']}-{config['protocol']}-*.pt")):
        try:
            payload = checkpoint.load(path, learner=config["learner"])
        except FewshotError:
            continue
        other = payload.get("config") or {}
        if not payload.get("complete") or {**other, "budget": config["budget"]} != config:
            continue
        steps = Budget.parse(other["budget"]).steps
        if steps is not None and steps < budget.steps and (best is None or steps > best[1]["step"]):
            best = (path, payload)
    return best


def embedded_split(
    learner: Learner, setup: Setup, role: str, device: torch.device, batch: int = 1024
) -> tuple[LabelledImages, torch.Tensor]:
    """Every image of a split embedded by the learner, labelled by class row, and those rows' descriptions."""
    split = setup.bench.split(role)
    if split is None:
        raise FewshotError(f"{setup.cell.dataset}/{setup.cell.protocol} has no {role} split")
    items, rows = ImagePool(setup.bench.data, split).items()
    was_training = learner.training
    learner.eval()
    features = embed_items(learner, setup.bench.data, items, device, batch)
    learner.train(was_training)
    assert setup.side is not None, "only learners that prepare on class descriptions embed whole splits"
    return LabelledImages(features, torch.from_numpy(rows.copy()).to(device)), setup.side[split.classes].to(device)


def prepare(
    setup: Setup, learner: Learner, device: torch.device, log: Callable[[str], None] = lambda line: None
) -> None:
    """Fit the learner's ``prepare`` heads on the training split, after choosing the hyperparameters of its
    ``hparam_grid`` not fixed with ``--hp`` by per-class accuracy on the val classes (Xian et al. 2018),
    fitting on ``bench.selection_train`` meanwhile. The choice is written into ``setup.hp`` and ``setup.selection``."""
    if not learner.prepares():
        return
    final = embedded_split(learner, setup, "train", device)
    grid = {k: v for k, v in setup.cls.hparam_grid.items() if k not in setup.overrides}
    val = setup.bench.split("val")
    if grid and val is not None and setup.side is not None:
        role = setup.bench.selection_train
        fit_on = final if role == "train" else embedded_split(learner, setup, role, device)
        val_features, _ = embedded_split(learner, setup, "val", device)
        candidates = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
        scores = []
        for candidate in candidates:
            learner.hp.update(candidate)
            learner.prepare(*fit_on)
            scores.append(
                evaluate_all_classes(learner, setup.bench.data, val, setup.side, device, embedded=val_features.x).mean
            )
        best = int(np.argmax(scores))  # the first of equals, in the grid's order
        learner.hp.update(candidates[best])
        setup.hp.update(candidates[best])
        setup.selection = {
            "chosen": candidates[best],
            "val_mean": scores[best],
            "candidates": len(candidates),
            "fitted_on": role,
        }
        log(
            f"chose {', '.join(f'{k}={v}' for k, v in candidates[best].items())} on the val classes "
            f"({100 * scores[best]:.2f}% per-class accuracy, best of {len(candidates)})"
        )
    learner.prepare(*final)


def evaluate_setup(
    setup: Setup,
    learner: Learner,
    device: torch.device,
    use_cache: bool | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> EvalResult:
    """The cell's test result: the learner's prepared heads first, then its protocol's evaluation."""
    prepare(setup, learner, device, log)
    learner.before_evaluation()
    return setup.protocol.evaluate(setup, learner, device, use_cache=use_cache, progress=progress)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    # Only the devices this suite runs on: torch names others (meta, mps, xla, ...) that fail later, mid-training.
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise FewshotError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        raise FewshotError(f"--device {name}: no CUDA device is visible to torch; use --device cpu or auto")
    if index and int(index) >= torch.cuda.device_count():
        raise FewshotError(
            f"--device {name}: torch sees {torch.cuda.device_count()} CUDA devices (cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}); choose one of them"
        )
    device = torch.device(name)
    if device.type == "cuda":
        # cuDNN's autotuner and its non-deterministic kernels would make a seed's numbers vary from run to run
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return device


def selection_record(setup: Setup) -> dict[str, Any]:
    """How the run's settings were chosen: the regime of a validation run, what ``prepare`` chose on val, and the
    defaults the learner and the adaptation method declare chosen on validation data that the run left as they are."""
    record = {"regime": setup.bench.selection, **setup.selection} if setup.bench.selection else dict(setup.selection)
    defaults = {k: how for k, how in setup.cls.chosen_on.items() if k not in setup.overrides}
    method = setup.adapt_cls
    if method is not None:  # the method's own overrides are resolved into adapt_hp: a default is a default's value
        defaults |= {
            f"{setup.adapt}.{k}": how
            for k, how in method.chosen_on.items()
            if setup.adapt_hp.get(k) == method.hparams[k]
        }
    return record | ({"defaults": defaults} if defaults else {})


def run_record(setup: Setup, trained: Trained, result: EvalResult, device: torch.device) -> dict[str, Any]:
    """The store's row for a run: the cell, the learner's configuration, the scores and where they came from."""
    from fewshot.records.provenance import provenance

    cell, learner = setup.cell, trained.learner
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "learner": setup.name,
        "hparams": setup.hp,
        "dataset": cell.dataset,
        "protocol": cell.protocol,
        "split": cell.split,
        "ways": cell.ways,
        "shots": cell.shots,
        "queries": cell.queries,
        "episodes": cell.episodes,
        "seed": cell.seed,
        "protocol_kind": cell.kind,
        "side": cell.side,
        "source": cell.source,
        "target": cell.target,
        "adaptation": setup.adapt,
        "adaptation_hparams": setup.adapt_hp,
        "target_labels": setup.target_labels,
        "selection": selection_record(setup),
        "backbone": learner.network_name(),
        "transductive": int(learner.transductive),
        "protocol_note": learner.protocol_note,
        "report": setup.bench.report,
        "unit": setup.protocol.unit,
        "mean": result.mean,
        "ci95": result.ci95,
        "seconds": result.seconds,
        "episodes_per_s": result.episodes_per_s,
        "episodes_digest": result.digest,
        "train_budget": trained.budget,
        "train_steps": trained.steps,
        "train_seconds": trained.seconds,
        "checkpoint": str(trained.checkpoint) if trained.checkpoint else None,
        "threads": torch.get_num_threads(),
        "embedding_cache": result.table_source,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        **provenance(),
    }
