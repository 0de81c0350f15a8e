"""Epochs that fit a wall-time budget: a supernet's schedule sized by its data, its recipe and this machine.

The learning-rate schedule needs the number of epochs before the first step, so the cost of an epoch is
measured first: a few real training steps of the recipe (every phase, the teacher phase too) on a copy of the
untrained supernet, plus one validation pass as at each epoch's end. The copy is thrown away; the supernet and
the caller's random state are left as they were.
"""

from __future__ import annotations

import copy
import itertools
import math
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Iterable, Iterator

import torch

from nasengine.evaluation.evaluator import Evaluator
from nasengine import supernets
from nasengine.supernets.training import SingleArch, TrainSettings, distributed, get_recipe, train_supernet
from nasengine.supernets.training.loop import EpochData
from nasengine.supernets.training.recipes import Recipe
from nasengine.supernets.training.teacher import FrozenTeacher
from nasengine.tasks import Task

if TYPE_CHECKING:
    from nasengine.training.run import TrainRequest

# without --epochs, a family trained from scratch trains its default epochs, fewer where they would overrun this
DEFAULT_BUDGET_MINUTES = 30.0
QUICK_SECONDS = 8.0  # about how long the timed steps of one recipe run at first
# where the quick timing leaves under 2x slack, steps are timed this long: this machine sustains up to 1.4x fewer
# steps per second than in its first seconds of full load (BENCHMARKS.md, issue #22)
SUSTAINED_SECONDS = 60.0
TIMING_SHARE = 0.05  # the longer timing takes at most this share of the budget
TIMED_STEPS = (3, 2000)  # fewest and most timed steps per phase
MOST_EPOCHS = 1000  # what an explicit budget may buy at most


@dataclass(frozen=True)
class EpochCost:
    """Measured wall seconds of one epoch of the recipe and of the teacher phase (0 without one)."""

    recipe_seconds: float
    teacher_seconds: float
    steps_per_epoch: int
    validation_seconds: float = 0.0  # of the epoch end, included in both

    def epochs_within(self, budget_seconds: float, teacher_epochs: int | None, auto_teacher: bool) -> int:
        """Most recipe epochs whose run fits `budget_seconds`. With a teacher phase of unset length ("auto" and no
        --teacher-epochs) it has as many epochs as the recipe, so each recipe epoch costs both."""
        if auto_teacher and teacher_epochs is None:
            return math.floor(budget_seconds / (self.recipe_seconds + self.teacher_seconds))
        spent = (teacher_epochs or 0) * self.teacher_seconds if auto_teacher else 0.0
        return math.floor((budget_seconds - spent) / self.recipe_seconds)


class _FirstBatches:
    """The first `steps` batches of each epoch of `data`: a short run with the real batches and transforms."""

    def __init__(self, data: EpochData, steps: int):
        self.data, self.steps_per_epoch = data, min(steps, data.steps_per_epoch)
        self.world_size = getattr(data, "world_size", 1)  # a shard stays this rank's shard

    def batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return itertools.islice(iter(self.data.batches(epoch)), self.steps_per_epoch)


def min_epochs(recipe: Recipe, net: supernets.Supernet) -> int:
    """Fewest epochs the recipe can split into its phases (progressive shrinking needs one per phase)."""
    for epochs in itertools.count(1):
        try:
            recipe.phases(net.space, epochs)
            return epochs
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _seconds_per_step(net: supernets.Supernet, recipe: Recipe, data: EpochData, settings: TrainSettings,
                      teacher: FrozenTeacher | None, seconds: float) -> float:
    """Wall seconds of one training step of `recipe` (all its phases in turn), timed on a copy of `net`."""
    phases = min_epochs(recipe, net)
    short = replace(settings, epochs=phases, teacher_epochs=0, teacher_lr=None)

    def run(steps: int) -> float:
        scratch = copy.deepcopy(net)
        started = time.perf_counter()
        train_supernet(scratch, recipe, _FirstBatches(data, steps), short, teacher=teacher)
        return (time.perf_counter() - started) / (phases * min(steps, data.steps_per_epoch))

    first = run(2)  # also pays one-off costs (allocations, first calls), so it is not what an epoch sees
    lo, hi = TIMED_STEPS
    steps = distributed.broadcast_json(max(lo, min(hi, round(seconds / (first * phases)))))  # ranks in step
    return run(steps)


def _validation_seconds(net: supernets.Supernet, task: Task) -> float:
    """One epoch end's validation (the largest and the smallest subnet), timed on a copy."""
    scratch = copy.deepcopy(net)
    evaluator = Evaluator(scratch, task, "val")
    started = time.perf_counter()
    for arch in (net.space.max(), net.space.min()):
        evaluator.scores(arch)
    return time.perf_counter() - started


def _measure_epoch_cost(net: supernets.Supernet, recipe: Recipe, task: Task, data: EpochData, settings: TrainSettings,
                       teacher: FrozenTeacher | None = None, with_teacher_phase: bool = False,
                       seconds: float = QUICK_SECONDS, validation: float | None = None) -> EpochCost:
    """What one epoch of training `net` with `recipe` on `data` costs here (and one of the teacher phase), from
    about `seconds` of timed steps each; `validation` is the epoch end's seconds when already timed."""
    with torch.random.fork_rng(devices=[]):
        validation = _validation_seconds(net, task) if validation is None else validation
        recipe_step = _seconds_per_step(net, recipe, data, settings, teacher, seconds)
        teacher_step = (_seconds_per_step(net, SingleArch(), data, settings, None, seconds) if with_teacher_phase
                        else 0.0)
    steps = data.steps_per_epoch
    return EpochCost(recipe_step * steps + validation, teacher_step * steps + validation if with_teacher_phase else 0.0,
                     steps, validation)


def describe(epochs: int, cost: EpochCost, budget_minutes: float, fits: int) -> Iterator[str]:
    """What the user is told about the chosen schedule."""
    minutes = cost.recipe_seconds / 60
    yield (f"{epochs} epoch(s): one epoch of {cost.steps_per_epoch} steps takes about {minutes:.1f} min here, "
           f"so {max(fits, 0)} fit the budget of {budget_minutes:g} min (--epochs N or --budget-minutes M to choose)")
    if fits < 1:
        yield ("even one epoch overruns the budget: training one anyway (fewer examples with --max-train, or a "
               "larger --budget-minutes, keep it within)")


def plan_epochs(request: TrainRequest, net: supernets.Supernet, task: Task, teacher: FrozenTeacher | None) -> int:
    """Without --epochs: the family's default epochs, or as many as fit the budget (an explicit one, or for a
    family trained from scratch DEFAULT_BUDGET_MINUTES capping the generic default), timed on this machine.
    `teacher` is the fixed teacher a path in --teacher names (None otherwise)."""
    family_default = "epochs" in supernets.entry(request.supernet).train_defaults
    if request.budget_minutes is None and family_default:
        return int(request.setting("epochs"))
    budget = request.budget_minutes or DEFAULT_BUDGET_MINUTES
    ceiling = MOST_EPOCHS if request.budget_minutes is not None else int(request.setting("epochs"))
    recipe, main = get_recipe(request.recipe), distributed.is_main()
    data = task.train_data(request.batch_size, request.seed)
    if distributed.world_size() > 1:
        data = data.shard(distributed.rank(), distributed.world_size())
    if request.progress and main:
        print(f"timing the first steps to fit the schedule into {budget:g} min ...", file=sys.stderr, flush=True)
    started, auto_teacher = time.perf_counter(), request.teacher == "auto"
    measure = partial(_measure_epoch_cost, net, recipe, task, data, request.settings(), teacher, auto_teacher)
    cost = measure()
    sustained = min(SUSTAINED_SECONDS, TIMING_SHARE * budget * 60)
    binds = 1 <= cost.epochs_within(budget * 60, request.teacher_epochs, auto_teacher) < 2 * ceiling
    if distributed.broadcast_json(binds and sustained > QUICK_SECONDS):  # every rank alike: timed steps synchronise
        cost = measure(seconds=sustained, validation=cost.validation_seconds)
    left = budget * 60 - (time.perf_counter() - started)  # the timing is part of the run
    fits = distributed.broadcast_json(cost.epochs_within(left, request.teacher_epochs, auto_teacher))  # rank 0's
    epochs = max(min_epochs(recipe, net), min(ceiling, fits))
    if request.progress and main:
        for line in describe(epochs, cost, budget, fits):
            print(line, file=sys.stderr, flush=True)
    return epochs
