"""Elastic weight-sharing ops: each holds the largest weights and runs a sliced, active configuration.

Every op is told its active configuration explicitly (`set_active`), can `export()` a static torch
module holding copies of the active weights, and `describe()` the active op as an OpSpec.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasengine.kernels.describe import OpSpec, conv_out_hw


class ElasticConv2d(nn.Module):
    """Conv whose first-k input/output channels and centre-cropped kernel are active.

    Smaller kernels are the centre of the larger ones passed through a learned per-size linear
    transform (initialised to identity), as in Once-for-All, so kernel sizes share weights without
    forcing the centre of a 7x7 to double as a good 3x3. With `depthwise`, groups = channels.
    """

    def __init__(self, max_in: int, max_out: int, kernel_sizes: tuple[int, ...] | list[int] = (1,), stride: int = 1,
                 depthwise: bool = False, bias: bool = False, kernel_transform: bool = True):
        super().__init__()
        sizes = sorted(set(int(k) for k in kernel_sizes))
        if any(k % 2 == 0 for k in sizes):
            raise ValueError(f"kernel sizes must be odd, got {sizes}")
        if depthwise and max_in != max_out:
            raise ValueError("a depthwise conv has as many outputs as inputs")
        self.max_in, self.max_out, self.stride, self.depthwise = max_in, max_out, stride, depthwise
        self.kernel_sizes = sizes
        kmax = sizes[-1]
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, kmax, kmax))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        self.transforms = nn.ParameterDict()
        if kernel_transform:
            for small in sizes[:-1]:
                self.transforms[f"k{small}"] = nn.Parameter(torch.eye(small * small))
        self.active_in, self.active_out, self.active_kernel = max_in, max_out, kmax

    def set_active(self, in_channels: int, out_channels: int, kernel_size: int | None = None) -> None:
        kernel_size = self.kernel_sizes[-1] if kernel_size is None else int(kernel_size)
        if kernel_size not in self.kernel_sizes:
            raise ValueError(f"kernel size {kernel_size} not among {self.kernel_sizes}")
        if not (0 < in_channels <= self.max_in and 0 < out_channels <= self.max_out):
            raise ValueError(f"channels {in_channels}->{out_channels} exceed {self.max_in}->{self.max_out}")
        if self.depthwise and in_channels != out_channels:
            raise ValueError("a depthwise conv has as many outputs as inputs")
        self.active_in, self.active_out, self.active_kernel = int(in_channels), int(out_channels), kernel_size

    def active_weight(self) -> torch.Tensor:
        """The sliced weight of the active configuration, kernel shrunk step by step from the largest."""
        cin = 1 if self.depthwise else self.active_in
        weight = self.weight[: self.active_out, :cin]
        for bigger, smaller in zip(self.kernel_sizes[::-1], self.kernel_sizes[-2::-1]):
            if bigger <= self.active_kernel:
                break
            start = (bigger - smaller) // 2
            weight = weight[:, :, start: start + smaller, start: start + smaller]
            key = f"k{smaller}"
            if key in self.transforms:
                shape = weight.shape
                weight = (weight.reshape(-1, smaller * smaller) @ self.transforms[key].t()).reshape(shape)
        return weight

    def active_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else self.bias[: self.active_out]

    def input_importance(self) -> torch.Tensor:
        """L1 norm of the weights reading each input channel (one filter per channel when depthwise)."""
        dims = (1, 2, 3) if self.depthwise else (0, 2, 3)
        return self.weight.detach().abs().sum(dim=dims)

    @torch.no_grad()
    def permute_outputs(self, order: torch.Tensor) -> None:
        """Reorder output channels (weights and bias); kernel transforms are shared by all channels."""
        _permute(self.weight, order, 0)
        if self.bias is not None:
            _permute(self.bias, order, 0)

    @torch.no_grad()
    def permute_inputs(self, order: torch.Tensor) -> None:
        """Reorder input channels; a depthwise conv's channels are its inputs and outputs at once."""
        if self.depthwise:
            self.permute_outputs(order)
        else:
            _permute(self.weight, order, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.active_out if self.depthwise else 1
        return F.conv2d(x, self.active_weight(), self.active_bias(), self.stride, self.active_kernel // 2, 1, groups)

    @torch.no_grad()
    def export(self) -> nn.Conv2d:
        groups = self.active_out if self.depthwise else 1
        conv = nn.Conv2d(self.active_in, self.active_out, self.active_kernel, self.stride, self.active_kernel // 2,
                         groups=groups, bias=self.bias is not None)
        conv.weight.copy_(self.active_weight())
        if self.bias is not None:
            conv.bias.copy_(self.active_bias())
        return conv

    def describe(self, in_hw: tuple[int, int]) -> OpSpec:
        return OpSpec("conv2d", self.active_in, self.active_out, tuple(in_hw),
                      conv_out_hw(in_hw, self.active_kernel, self.stride), self.active_kernel, self.stride,
                      self.active_out if self.depthwise else 1, self.bias is not None)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the first-k channels, slicing affine weights and running statistics alike."""

    def __init__(self, max_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__(max_features, eps=eps, momentum=momentum)
        self.active_features = max_features

    def set_active(self, features: int) -> None:
        if not 0 < features <= self.num_features:
            raise ValueError(f"{features} features exceed {self.num_features}")
        self.active_features = int(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.active_features
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        # slices of the running buffers are views: training updates the shared statistics in place
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, factor, self.eps)

    @torch.no_grad()
    def permute(self, order: torch.Tensor) -> None:
        """Reorder channels: affine parameters and running statistics alike."""
        for tensor in (self.weight, self.bias, self.running_mean, self.running_var):
            _permute(tensor, order, 0)

    @torch.no_grad()
    def export(self) -> nn.BatchNorm2d:
        c = self.active_features
        bn = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum if self.momentum is not None else 0.1)
        bn.weight.copy_(self.weight[:c])
        bn.bias.copy_(self.bias[:c])
        bn.running_mean.copy_(self.running_mean[:c])
        bn.running_var.copy_(self.running_var[:c])
        bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn

    def describe(self, in_hw: tuple[int, int]) -> OpSpec:
        c = self.active_features
        return OpSpec("batchnorm2d", c, c, tuple(in_hw), tuple(in_hw))


class ElasticLinear(nn.Module):
    """Fully connected layer over the first-k inputs and outputs."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True):
        super().__init__()
        self.max_in, self.max_out = max_in, max_out
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        nn.init.normal_(self.weight, std=0.01)
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        self.active_in, self.active_out = max_in, max_out

    def set_active(self, in_features: int, out_features: int | None = None) -> None:
        out_features = self.max_out if out_features is None else out_features
        if not (0 < in_features <= self.max_in and 0 < out_features <= self.max_out):
            raise ValueError(f"features {in_features}->{out_features} exceed {self.max_in}->{self.max_out}")
        self.active_in, self.active_out = int(in_features), int(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias[: self.active_out]
        return F.linear(x, self.weight[: self.active_out, : self.active_in], bias)

    @torch.no_grad()
    def export(self) -> nn.Linear:
        lin = nn.Linear(self.active_in, self.active_out, bias=self.bias is not None)
        lin.weight.copy_(self.weight[: self.active_out, : self.active_in])
        if self.bias is not None:
            lin.bias.copy_(self.bias[: self.active_out])
        return lin

    def describe(self, in_hw: tuple[int, int] = (1, 1)) -> OpSpec:
        return OpSpec("linear", self.active_in, self.active_out, bias=self.bias is not None)


def _permute(tensor: torch.Tensor, order: torch.Tensor, dim: int) -> None:
    """Reorder `tensor` along `dim` in place (parameters keep their identity, so optimisers still hold them)."""
    if tensor.shape[dim] != order.numel():
        raise ValueError(f"permutation of {order.numel()} entries for a dimension of size {tensor.shape[dim]}")
    tensor.copy_(tensor.index_select(dim, order.to(tensor.device)))
