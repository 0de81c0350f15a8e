"""Batch-norm recalibration: a subnet's BN statistics are re-estimated before it is evaluated or exported.

`recalibrate_bn` overwrites the statistics a weight-sharing net shares between all its subnets; wrap it in
`preserved_state(net)` (as `nasengine.evaluation.Evaluator` does) so that evaluating one subnet leaves the
net exactly as it was for every other.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches: Iterable[tuple[torch.Tensor, ...]]) -> int:
    """Reset every BN layer's running statistics and re-estimate them as an exact average over `batches`.

    Only BN layers run in train mode (dropout stays off); the net is left in eval mode. The statistics of
    *every* BN layer are reset, and only those the active subnet reaches are re-estimated, so in a
    weight-sharing net this overwrites the statistics all subnets share: call it for the subnet about to be
    used, inside `preserved_state(net)` unless the net is meant to keep the new statistics.
    Each batch is the tuple of the net's positional inputs. A net without BN layers (transformers) is left as
    it is and no batch is run. Returns the number of samples seen.
    """
    bns = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    if not bns:
        net.eval()
        return 0
    momenta = [bn.momentum for bn in bns]
    net.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches
        bn.train()
    seen = 0
    try:
        for args in batches:
            args = args if isinstance(args, tuple) else (args,)
            net(*args)
            seen += int(args[0].shape[0])
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
            bn.eval()
    if seen == 0:
        raise ValueError("BN recalibration needs at least one batch")
    return seen


class NetState:
    """A snapshot of what evaluating a subnet may change in `net`, and `restore()` to put it back exactly.

    Holds a clone of every buffer (BN running_mean / running_var / num_batches_tracked, ...), copied back in
    place (into the tensor the module then holds) so that views of and references to buffers stay valid,
    and a shallow copy of every module's attributes: `restore()` rebinds each attribute to the object it
    referred to, which brings back the train/eval flags, BN momentum, the per-layer active configuration
    (`active_in`, `active_kernel`, ... of the elastic ops and layers, inactive layers included) and a
    supernet's active arch (`_active`). A supernet (an object with `active_arch` and `set_active`) first gets
    `set_active(previous arch)`, for any state a family keeps elsewhere. Parameters are not copied: the work
    this guards (recalibration, evaluation, extraction) never writes them.
    """

    def __init__(self, net: nn.Module):
        self.net = net
        modules = list(net.modules())
        self.buffers = [(module, name, buf, buf.clone())
                        for module in modules for name, buf in module._buffers.items() if buf is not None]
        self.attributes = [(module, module.__dict__.copy()) for module in modules]
        self.active = _active_arch(net)

    @torch.no_grad()
    def restore(self) -> None:
        if self.active is not None:
            self.net.set_active(self.active)  # type: ignore[operator]
        for module, attributes in self.attributes:
            module.__dict__.update(attributes)
        for module, name, buf, saved in self.buffers:
            current = module._buffers.get(name)
            if current is None:  # the work dropped the buffer: bring the original back
                module._buffers[name] = current = buf
            current.copy_(saved)


def _active_arch(net: nn.Module) -> Any:
    """A supernet's active arch (`nasengine.supernets.base.Supernet.active_arch`), or None for a plain net."""
    if not callable(getattr(net, "set_active", None)) or not hasattr(net, "active_arch"):
        return None
    return net.active_arch  # type: ignore[attr-defined]


@contextmanager
def preserved_state(net: nn.Module) -> Iterator[nn.Module]:
    """Run the body (BN recalibration, evaluation, extraction, ...) and then put `net` back exactly as it was.

    Every buffer is bit-identical afterwards, the active arch and per-layer active configuration and every
    module's train/eval mode are as before, also when the body raises. See `NetState` for what is kept.
    """
    state = NetState(net)
    try:
        yield net
    finally:
        state.restore()
