"""Elastic layers built from elastic ops: conv-BN-activation, squeeze-excite and the MobileNet inverted block."""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from nasengine.kernels.activations import activation
from nasengine.kernels.describe import OpSpec
from nasengine.kernels.ops import ElasticBatchNorm2d, ElasticConv2d
from nasengine.kernels.static import Residual, SqueezeExcite



def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of `divisor`, never dropping more than 10 % (MobileNet convention)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


class ChannelPermutable(Protocol):
    """A layer whose input and output channels can be reordered (importance sorting before shrinking)."""

    def input_importance(self) -> torch.Tensor: ...

    def permute_inputs(self, order: torch.Tensor) -> None: ...

    def permute_outputs(self, order: torch.Tensor) -> None: ...




def _act_spec(name: str, channels: int, hw: tuple[int, int]) -> OpSpec:
    return OpSpec(name, channels, channels, hw, hw)


class ConvBNAct(nn.Module):
    """Elastic conv -> elastic BN -> activation (activation optional)."""

    def __init__(self, max_in: int, max_out: int, kernel_sizes: tuple[int, ...] = (1,), stride: int = 1,
                 act: str | None = "relu", depthwise: bool = False):
        super().__init__()
        self.conv = ElasticConv2d(max_in, max_out, kernel_sizes, stride, depthwise=depthwise)
        self.bn = ElasticBatchNorm2d(max_out)
        self.act_name = act
        self.act = activation(act) if act else nn.Identity()

    def set_active(self, in_channels: int, out_channels: int, kernel_size: int | None = None) -> None:
        self.conv.set_active(in_channels, out_channels, kernel_size)
        self.bn.set_active(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def input_importance(self) -> torch.Tensor:
        return self.conv.input_importance()

    def permute_inputs(self, order: torch.Tensor) -> None:
        """Reorder input channels (depthwise: every channel, so BN follows)."""
        if self.conv.depthwise:
            self.permute_outputs(order)
        else:
            self.conv.permute_inputs(order)

    def permute_outputs(self, order: torch.Tensor) -> None:
        self.conv.permute_outputs(order)
        self.bn.permute(order)

    def export(self) -> nn.Sequential:
        parts: OrderedDict[str, nn.Module] = OrderedDict(conv=self.conv.export(), bn=self.bn.export())
        if self.act_name:
            parts["act"] = activation(self.act_name)
        return nn.Sequential(parts)

    def describe(self, in_hw: tuple[int, int]) -> tuple[list[OpSpec], tuple[int, int]]:
        conv = self.conv.describe(in_hw)
        ops = [conv, self.bn.describe(conv.out_hw)]
        if self.act_name:
            ops.append(_act_spec(self.act_name, conv.out_channels, conv.out_hw))
        return ops, conv.out_hw


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-excite whose channel count follows the active block width (mid = channels / reduction)."""

    def __init__(self, max_channels: int, reduction: int = 4):
        super().__init__()
        self.reduction = reduction
        max_mid = make_divisible(max_channels / reduction)
        self.reduce = ElasticConv2d(max_channels, max_mid, bias=True)
        self.expand = ElasticConv2d(max_mid, max_channels, bias=True)
        nn.init.zeros_(self.expand.weight)  # start as a constant gate so training begins like a plain block
        self.active_channels = max_channels

    def mid(self, channels: int) -> int:
        return min(make_divisible(channels / self.reduction), self.reduce.max_out)

    def set_active(self, channels: int) -> None:
        mid = self.mid(channels)
        self.reduce.set_active(channels, mid)
        self.expand.set_active(mid, channels)
        self.active_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(s))))

    def permute_channels(self, order: torch.Tensor) -> None:
        """Reorder the gated channels (the squeezed middle channels keep their order)."""
        self.reduce.permute_inputs(order)
        self.expand.permute_outputs(order)

    def export(self) -> SqueezeExcite:
        se = SqueezeExcite(self.active_channels, self.reduce.active_out)
        se.reduce, se.expand = self.reduce.export(), self.expand.export()
        return se

    def describe(self, in_hw: tuple[int, int]) -> list[OpSpec]:
        c, mid = self.active_channels, self.reduce.active_out
        return [OpSpec("global_pool", c, c, in_hw, (1, 1)), self.reduce.describe((1, 1)),
                _act_spec("relu", mid, (1, 1)),
                self.expand.describe((1, 1)), _act_spec("hardsigmoid", c, (1, 1)), OpSpec("mul", c, c, in_hw, in_hw)]


class ElasticMBConv(nn.Module):
    """Inverted residual block: 1x1 expand, kxk depthwise, optional SE, 1x1 project; elastic kernel, expand, width.

    The residual connection is used when stride is 1 and the active input and output widths match.
    """

    def __init__(self, max_in: int, out_channels: int, kernel_sizes: tuple[int, ...], expand_ratios: tuple[float, ...],
                 stride: int = 1, act: str = "relu", use_se: bool = False):
        super().__init__()
        self.max_in, self.out_channels, self.stride = max_in, out_channels, stride
        self.expand_ratios = sorted(expand_ratios)
        self.kernel_sizes = sorted(kernel_sizes)
        max_hidden = make_divisible(max_in * self.expand_ratios[-1])
        self.has_expand = self.expand_ratios[-1] != 1
        self.expand = ConvBNAct(max_in, max_hidden, (1,), 1, act) if self.has_expand else None
        self.depthwise = ConvBNAct(max_hidden, max_hidden, tuple(self.kernel_sizes), stride, act, depthwise=True)
        self.se = ElasticSqueezeExcite(max_hidden) if use_se else None
        self.project = ConvBNAct(max_hidden, out_channels, (1,), 1, act=None)
        self.active_in, self.active_hidden, self.active_out = max_in, max_hidden, out_channels
        self.active_kernel, self.active_expand = self.kernel_sizes[-1], self.expand_ratios[-1]

    def hidden(self, in_channels: int, expand: float) -> int:
        return in_channels if not self.has_expand else make_divisible(in_channels * expand)

    @property
    def residual(self) -> bool:
        """Fixed by the full widths, as in Once-for-All: narrow subnets never add two differently ordered streams."""
        return self.same_stream and self.active_in == self.active_out

    @property
    def same_stream(self) -> bool:
        """Input and output form one residual stream at full width, so they must share one channel order."""
        return self.stride == 1 and self.max_in == self.out_channels

    def set_active(self, in_channels: int, kernel_size: int, expand: float, out_channels: int | None = None) -> None:
        """Activate the first `in_channels` inputs and `out_channels` outputs (default: all), kernel and expand."""
        if expand not in self.expand_ratios:
            raise ValueError(f"expand ratio {expand} not among {self.expand_ratios}")
        out = self.out_channels if out_channels is None else int(out_channels)
        if not 0 < out <= self.out_channels:
            raise ValueError(f"{out} output channels exceed {self.out_channels}")
        hidden = self.hidden(in_channels, expand)
        if self.expand is not None:
            self.expand.set_active(in_channels, hidden)
        self.depthwise.set_active(hidden, hidden, kernel_size)
        if self.se is not None:
            self.se.set_active(hidden)
        self.project.set_active(hidden, out)
        self.active_in, self.active_hidden, self.active_out = in_channels, hidden, out
        self.active_kernel, self.active_expand = kernel_size, expand

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.residual else out

    def export(self) -> nn.Module:
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        if self.expand is not None:
            parts["expand"] = self.expand.export()
        parts["depthwise"] = self.depthwise.export()
        if self.se is not None:
            parts["se"] = self.se.export()
        parts["project"] = self.project.export()
        body = nn.Sequential(parts)
        return Residual(body) if self.residual else body

    def describe(self, in_hw: tuple[int, int]) -> tuple[list[OpSpec], tuple[int, int]]:
        ops: list[OpSpec] = []
        hw = in_hw
        if self.expand is not None:
            part, hw = self.expand.describe(hw)
            ops += part
        part, hw = self.depthwise.describe(hw)
        ops += part
        if self.se is not None:
            ops += self.se.describe(hw)
        part, hw = self.project.describe(hw)
        ops += part
        if self.residual:
            ops.append(OpSpec("add", self.active_out, self.active_out, hw, hw))
        return ops, hw

    @torch.no_grad()
    def sort_hidden_channels(self) -> None:
        """Reorder hidden channels by importance (L1 of project weights) so narrower blocks keep the best ones."""
        if self.expand is None:
            return
        order = torch.argsort(self.project.conv.input_importance(), descending=True, stable=True)
        self.expand.permute_outputs(order)
        self._permute_hidden(order)

    def _permute_hidden(self, order: torch.Tensor) -> None:
        """Reorder the hidden channels after the expand conv: depthwise, its BN, SE and the project's inputs."""
        self.depthwise.permute_outputs(order)
        if self.se is not None:
            self.se.permute_channels(order)
        self.project.permute_inputs(order)

    def input_importance(self) -> torch.Tensor:
        """L1 of the weights reading each input channel: the expand conv's, or the depthwise filter's if none."""
        first = self.expand if self.expand is not None else self.depthwise
        return first.input_importance()

    @torch.no_grad()
    def permute_inputs(self, order: torch.Tensor) -> None:
        """Reorder input channels; without an expand conv the hidden channels are the inputs and follow them."""
        if self.expand is not None:
            self.expand.permute_inputs(order)
        else:
            self._permute_hidden(order)

    @torch.no_grad()
    def permute_outputs(self, order: torch.Tensor) -> None:
        """Reorder output channels: project conv rows and project BN."""
        self.project.permute_outputs(order)
