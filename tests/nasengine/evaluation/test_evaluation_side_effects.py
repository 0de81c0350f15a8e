"""Evaluating an arch leaves the supernet exactly as it was: parameters, buffers, active arch, mode."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from nasengine.kernels.calibration import preserved_state
from nasengine.evaluation.evaluator import Evaluator, accuracy
from nasengine.tasks import task_from_spec
from nasengine.supernets.io import load_supernet


def _load(directory: Path):
    net, config = load_supernet(directory)
    return net, task_from_spec(config["task"])


@pytest.fixture
def loaded(tiny_supernet_dir: Path):
    """A fresh copy of the trained tiny supernet, its task and an evaluator (each test may dirty it)."""
    net, task = _load(tiny_supernet_dir)
    return net, task, Evaluator(net, task, "val")


def _archs(net):
    space = net.space
    a, b = space.min(), space.max()
    c = space.sample(seed=3)
    return a, b, c


def _snapshot(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _layer_config(net) -> list[dict]:
    """Every module's active configuration and mode, inactive layers included."""
    return [{k: v for k, v in vars(m).items() if k.startswith("active_") or k == "training"} for m in net.modules()]


def _assert_same_state(before: dict[str, torch.Tensor], net) -> None:
    after = net.state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"evaluation changed {changed[:5]} (+{max(0, len(changed) - 5)} more)"


def _outputs(net, arch, images: torch.Tensor) -> torch.Tensor:
    net.set_active(arch)
    with torch.no_grad():
        return net(net.adapt_input(images, arch))


def test_evaluate_leaves_every_tensor_the_active_arch_and_the_mode_alone(loaded):
    net, task, evaluator = loaded
    a, b, _ = _archs(net)
    net.set_active(b)
    for training in (False, True):
        net.train(training)
        before, config = _snapshot(net), _layer_config(net)
        accuracy_a = evaluator.evaluate(a)
        assert 0.0 <= accuracy_a <= 1.0
        _assert_same_state(before, net)
        assert net.active_arch == net.space.validate(b)
        assert _layer_config(net) == config
        assert net.training is training and all(m.training is training for m in net.modules())
        evaluator.extract(a)
        _assert_same_state(before, net)
        assert net.active_arch == net.space.validate(b)
        assert _layer_config(net) == config


def test_outputs_of_another_arch_do_not_change(loaded):
    net, task, evaluator = loaded
    a, b, c = _archs(net)
    images = task.split("test").inputs[:64]
    net.eval()
    reference = {key: _outputs(net, arch, images) for key, arch in (("b", b), ("c", c))}
    evaluator.evaluate(a)
    evaluator.extract(c)
    net.eval()
    for key, arch in (("b", b), ("c", c)):
        assert torch.equal(_outputs(net, arch, images), reference[key]), key


def test_accuracies_do_not_depend_on_what_was_evaluated_before(loaded, tiny_supernet_dir: Path):
    net, task, evaluator = loaded
    a, b, c = _archs(net)
    first = evaluator.evaluate(a)
    assert evaluator.evaluate(a) == first
    evaluator.evaluate(b)
    assert evaluator.evaluate(a) == first
    evaluator.extract(c)
    assert evaluator.evaluate(a) == first
    # the numbers are those of recalibrating in place and scoring, as before the state was preserved
    fresh, _ = _load(tiny_supernet_dir)  # an untouched copy, used the old way
    old = Evaluator(fresh, task, "val")
    canonical = old.calibrate(a)
    assert accuracy(fresh, old.split, lambda x: fresh.adapt_input(x, canonical), old.batch_size) == first


def test_extracted_subnet_is_the_evaluated_subnet(loaded):
    net, task, evaluator = loaded
    a, b, c = _archs(net)
    images = task.split("test").inputs[:64]
    for arch in (a, c):
        static = evaluator.extract(arch)
        assert not static.training
        canonical = net.space.validate(arch)
        assert accuracy(static, evaluator.split, lambda x: net.adapt_input(x, canonical)) == evaluator.evaluate(arch)
        # fidelity: the supernet with the arch active and recalibrated computes what the static module does
        with evaluator.calibrated(arch), torch.no_grad():
            x = net.adapt_input(images, canonical)
            elastic, plain = net(x), static(x)
            bn = [m for m in static.modules() if isinstance(m, torch.nn.BatchNorm2d)]
            assert bn and all(int(m.num_batches_tracked) > 0 for m in bn)  # recalibrated statistics baked in
        assert float((elastic - plain).abs().max()) < 1e-5


def test_state_is_restored_when_the_evaluation_fails(loaded):
    net, task, evaluator = loaded
    a, b, _ = _archs(net)
    net.set_active(b)
    net.train()
    before = _snapshot(net)
    evaluator.calibration = evaluator.calibration.subset(slice(0, 0))  # no calibration batch: recalibration raises
    with pytest.raises(ValueError, match="at least one batch"):
        evaluator.evaluate(a)
    _assert_same_state(before, net)
    assert net.active_arch == net.space.validate(b) and net.training


def test_preserved_state_keeps_buffer_identity(loaded):
    net, _, _ = loaded
    buffers = {name: buf for name, buf in net.named_buffers()}
    with preserved_state(net):
        for buf in buffers.values():
            buf.add_(1)
    assert all(buf is buffers[name] for name, buf in net.named_buffers())


def _evaluate_in_process(directory: str, archs: list[dict]) -> list[float]:
    torch.set_num_threads(1)
    net, task = _load(Path(directory))
    evaluator = Evaluator(net, task, "val")
    return [evaluator.evaluate(arch) for arch in archs]


def test_evaluations_in_two_processes_at_once_match_sequential_ones(tiny_supernet_dir: Path):
    net, task = _load(tiny_supernet_dir)
    a, b, c = _archs(net)
    evaluator = Evaluator(net, task, "val")
    sequential = [evaluator.evaluate(arch) for arch in (a, b, c)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        first = pool.submit(_evaluate_in_process, str(tiny_supernet_dir), [a, b, c])
        second = pool.submit(_evaluate_in_process, str(tiny_supernet_dir), [c, b, a])
        assert first.result() == sequential
        assert second.result() == sequential[::-1]
