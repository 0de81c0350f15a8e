"""Once-for-all MobileNetV3: elastic resolution, per-stage depth, per-block kernel size and expand ratio."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from kernels import ConvBNAct, ElasticLinear, ElasticMBConv, GlobalAvgPool, LayerSpec, OpSpec
from search_spaces.builtin import elastic_mobilenet_space
from search_spaces.space import Arch
from supernets.base import Layer, Supernet
from supernets.registry import register


class OFAMobileNetV3(Supernet):
    """Stem, a fixed first block, elastic stages of inverted residual blocks, and a 1x1 head + classifier."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, stem_width: int = 16,
                 stage_widths: Sequence[int] = (24, 40, 64, 96), stage_strides: Sequence[int] = (2, 2, 2, 1),
                 stage_acts: Sequence[str] = ("relu", "hswish", "hswish", "hswish"),
                 stage_se: Sequence[bool] = (False, True, False, True), head_width: int = 192,
                 depths: Sequence[int] = (1, 2, 3, 4), kernels: Sequence[int] = (3, 5, 7),
                 expands: Sequence[float] = (3, 4, 6), resolutions: Sequence[int] = (8, 12, 16, 20, 24, 28, 32),
                 stem_stride: int = 2, dropout: float = 0.1):
        n = len(stage_widths)
        if not (len(stage_strides) == len(stage_acts) == len(stage_se) == n):
            raise ValueError("stage_widths, stage_strides, stage_acts and stage_se need one entry per stage")
        super().__init__(elastic_mobilenet_space(n, depths, kernels, expands, resolutions, name="ofa_mbv3"))
        self._config: dict[str, Any] = {
            "in_channels": in_channels, "num_classes": num_classes, "stem_width": stem_width,
            "stage_widths": list(stage_widths), "stage_strides": list(stage_strides), "stage_acts": list(stage_acts),
            "stage_se": list(stage_se), "head_width": head_width, "depths": sorted(depths), "kernels": sorted(kernels),
            "expands": sorted(expands), "resolutions": sorted(resolutions), "stem_stride": stem_stride,
            "dropout": dropout,
        }
        self.in_channels, self.num_classes = in_channels, num_classes
        self.stem = ConvBNAct(in_channels, stem_width, (3,), stem_stride, "hswish")
        self.first = ElasticMBConv(stem_width, stem_width, (3,), (1,), 1, "relu")
        self.stages = nn.ModuleList()
        width = stem_width
        for out, stride, act, se in zip(stage_widths, stage_strides, stage_acts, stage_se):
            blocks = [ElasticMBConv(width if j == 0 else out, out, tuple(kernels), tuple(expands),
                                    stride if j == 0 else 1, act, se) for j in range(max(depths))]
            self.stages.append(nn.ModuleList(blocks))
            width = out
        self.head = ConvBNAct(width, head_width, (1,), 1, "hswish")
        self.pool = GlobalAvgPool()
        self.dropout = nn.Dropout(dropout)
        self.classifier = ElasticLinear(head_width, num_classes)
        self.set_active(self.space.max())

    # --- activation -------------------------------------------------------------------------------
    def _activate(self, arch: Arch) -> None:
        cfg = self._config
        self.stem.set_active(self.in_channels, cfg["stem_width"], 3)
        self.first.set_active(cfg["stem_width"], 3, 1)
        width = cfg["stem_width"]
        for i, blocks in enumerate(self.stages):
            for j in range(arch[f"s{i}.depth"]):
                blocks[j].set_active(width, arch[f"s{i}.b{j}.kernel"], arch[f"s{i}.b{j}.expand"])
                width = blocks[j].out_channels

    def _active_blocks(self, arch: Mapping[str, Any]) -> list[tuple[str, ElasticMBConv]]:
        blocks = [("first", self.first)]
        for i, stage in enumerate(self.stages):
            blocks += [(f"s{i}.b{j}", stage[j]) for j in range(arch[f"s{i}.depth"])]
        return blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for _, block in self._active_blocks(self._active):
            x = block(x)
        x = self.pool(self.head(x))
        return self.classifier(self.dropout(x))

    # --- inputs -----------------------------------------------------------------------------------
    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        r = int(arch["resolution"])
        return (self.in_channels, r, r)

    def input_transform(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        r = int(arch["resolution"])
        return {"resize": [r, r]}

    # --- export and description -------------------------------------------------------------------
    def _export_active(self) -> nn.Module:
        blocks = nn.Sequential(OrderedDict((name.replace(".", "_"), block.export())
                                           for name, block in self._active_blocks(self._active)))
        return nn.Sequential(OrderedDict(stem=self.stem.export(), blocks=blocks, head=self.head.export(),
                                         pool=GlobalAvgPool(), classifier=self.classifier.export()))

    def _walk_active(self, export: bool) -> list[Layer]:
        r = int(self._active["resolution"])
        shape: tuple[int, ...] = (self.in_channels, r, r)
        ops, hw = self.stem.describe((r, r))
        layers = [Layer(LayerSpec("stem", "conv_bn_act", tuple(ops)), shape, self.stem.export() if export else None)]
        for name, block in self._active_blocks(self._active):
            shape = (block.active_in, *hw)
            ops, hw = block.describe(hw)
            layers.append(Layer(LayerSpec(name, "mbconv", tuple(ops)), shape, block.export() if export else None))
        shape = (self.head.conv.active_in, *hw)
        ops, hw = self.head.describe(hw)
        c = self.head.conv.active_out
        ops.append(OpSpec("global_pool", c, c, hw, (1, 1)))
        head = nn.Sequential(OrderedDict(head=self.head.export(), pool=GlobalAvgPool())) if export else None
        layers.append(Layer(LayerSpec("head", "conv_bn_act_pool", tuple(ops)), shape, head))
        layers.append(Layer(LayerSpec("classifier", "linear", (self.classifier.describe(),)), (c,),
                            self.classifier.export() if export else None))
        return layers

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def prepare_phase(self, tags: set[str]) -> None:
        """Entering elastic expand ratios: sort hidden channels so the narrow subnets keep the important ones."""
        if "expand" in tags:
            for stage in self.stages:
                for block in stage:
                    block.sort_hidden_channels()


@register("ofa_mbv3_digits", task="digits")
def ofa_mbv3_digits(**overrides: Any) -> OFAMobileNetV3:
    """MobileNetV3-style once-for-all CNN for 8x8 digits at 8-32 px (elastic r/depth/kernel/expand)."""
    return OFAMobileNetV3(**overrides)
