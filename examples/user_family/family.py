"""A user-defined supernet family: a small ResNet with elastic depth and width per stage (and elastic resolution).

Load it with `nasengine --plugin examples/user_family/family.py ...`; importing this file registers
`elastic_resnet`. It uses only the public API of `nasengine.kernels`, `nasengine.search_spaces` and
`nasengine.supernets`, and writes no
op descriptions: costs and per-layer latency tables are traced from `_export_active()` by the base class.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from nasengine import supernets
from nasengine.kernels import ConvBNAct, ElasticLinear, GlobalAvgPool, Residual, make_divisible
from nasengine.search_spaces import Arch, Choice, Space


def elastic_resnet_space(n_stages: int, depths: Sequence[int], widths: Sequence[float],
                         resolutions: Sequence[int] | None) -> Space:
    """Genes: `resolution` (if any), then per stage `s{i}.depth` (blocks) and `s{i}.width` (width multiplier)."""
    genes = [Choice("resolution", sorted(resolutions), tag="resolution")] if resolutions else []
    for i in range(n_stages):
        # options run from cheapest to most expensive: `space.min()`/`max()` and the recipes rely on it
        genes.append(Choice(f"s{i}.depth", sorted(depths), tag="depth"))
        genes.append(Choice(f"s{i}.width", sorted(widths), tag="width"))
    return Space(genes, name="elastic_resnet")


class ElasticBasicBlock(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, (+ x when `residual`), ReLU; input and output widths are elastic.

    Only blocks that keep the shape (stride 1, same width) are residual, so the export stays within the
    static vocabulary: `Residual(body)` computes `body(x) + x`.
    """

    def __init__(self, max_in: int, max_out: int, stride: int, residual: bool):
        super().__init__()
        if residual and (stride != 1 or max_in != max_out):
            raise ValueError("a residual block keeps the shape: stride 1 and as many inputs as outputs")
        self.residual = residual
        self.conv1 = ConvBNAct(max_in, max_out, (3,), stride, "relu")
        self.conv2 = ConvBNAct(max_out, max_out, (3,), 1, None if residual else "relu")
        self.act = nn.ReLU()

    def set_active(self, in_channels: int, out_channels: int) -> None:
        self.conv1.set_active(in_channels, out_channels)
        self.conv2.set_active(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return self.act(out + x) if self.residual else out

    def export(self) -> nn.Sequential:
        body = nn.Sequential(OrderedDict(conv1=self.conv1.export(), conv2=self.conv2.export()))
        if not self.residual:
            return body  # conv2 already ends in ReLU
        return nn.Sequential(OrderedDict(add=Residual(body), act=nn.ReLU()))


@dataclass(frozen=True)
class ResNetConfig(supernets.FamilyConfig):
    """Everything that builds the family, as plain JSON values: `nasengine train elastic_resnet --set KEY=JSON`
    overrides a field, and config.json records them all."""

    in_channels: int = 3
    num_classes: int = 10
    stem_width: int = 16
    stage_widths: Sequence[int] = (16, 32, 64)
    stage_strides: Sequence[int] = (1, 2, 2)
    depths: Sequence[int] = (1, 2, 3)
    widths: Sequence[float] = (0.5, 0.75, 1.0)
    resolutions: Sequence[int] | None = None
    image_size: Sequence[int] = (32, 32)


class ElasticResNet(supernets.Supernet):
    """Stem, stages of basic blocks (the first of each stage strided and plain), global pool and a classifier."""

    def __init__(self, config: ResNetConfig = ResNetConfig()):
        in_channels, num_classes, stem_width = config.in_channels, config.num_classes, config.stem_width
        stage_widths = config.stage_widths
        stage_strides, depths, widths = config.stage_strides, config.depths, config.widths
        resolutions = config.resolutions
        image_size = config.image_size
        if len(stage_widths) != len(stage_strides):
            raise ValueError("stage_widths and stage_strides need one entry per stage")
        super().__init__(elastic_resnet_space(len(stage_widths), depths, widths, resolutions))
        # everything needed to rebuild this supernet, as JSON (`config` below)
        self._config: dict[str, Any] = {
            "in_channels": in_channels, "num_classes": num_classes, "stem_width": stem_width,
            "stage_widths": list(stage_widths), "stage_strides": list(stage_strides), "depths": sorted(depths),
            "widths": sorted(widths), "resolutions": sorted(resolutions) if resolutions else None,
            "image_size": [int(s) for s in image_size],
        }
        self.in_channels, self.num_classes = in_channels, num_classes
        # elastic layers hold the largest weights; `_activate` selects the active slice of each
        self.stem = ConvBNAct(in_channels, stem_width, (3,), 1, "relu")
        self.stages = nn.ModuleList()
        width = stem_width
        for out, stride in zip(stage_widths, stage_strides):
            blocks = [ElasticBasicBlock(width if j == 0 else out, out, stride if j == 0 else 1, residual=j > 0)
                      for j in range(max(depths))]
            self.stages.append(nn.ModuleList(blocks))
            width = out
        self.pool = GlobalAvgPool()
        self.classifier = ElasticLinear(width, num_classes)
        self.set_active(self.space.max())

    def stage_width(self, stage: int, multiplier: float) -> int:
        """Active channels of a stage for a width multiplier (a multiple of 4, at most the stage's maximum)."""
        full = self._config["stage_widths"][stage]
        return min(full, make_divisible(full * multiplier, 4))

    # --- the active subnet ------------------------------------------------------------------------
    def _activate(self, arch: Arch) -> None:
        self.stem.set_active(self.in_channels, self._config["stem_width"])
        width = self._config["stem_width"]
        for i, blocks in enumerate(self.stages):
            out = self.stage_width(i, arch[f"s{i}.width"])
            for j in range(arch[f"s{i}.depth"]):
                blocks[j].set_active(width, out)
                width = out
        self.classifier.set_active(width, self.num_classes)

    def _active_blocks(self) -> list[list[ElasticBasicBlock]]:
        return [list(blocks)[: self._active[f"s{i}.depth"]] for i, blocks in enumerate(self.stages)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for blocks in self._active_blocks():
            for block in blocks:
                x = block(x)
        return self.classifier(self.pool(x))

    # --- inputs -----------------------------------------------------------------------------------
    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        if self._config["resolutions"]:
            r = int(arch["resolution"])
            return (self.in_channels, r, r)
        return (self.in_channels, *self._config["image_size"])

    def input_transform(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        if self._config["resolutions"]:
            r = int(arch["resolution"])
            return {"resize": [r, r]}
        return {}

    # --- export: static modules only; describe()/cost()/layer_modules() are traced from this ----------
    def _export_active(self) -> nn.Module:
        # each stage is an nn.Sequential of blocks, so every block becomes one layer ("s0.b0", ...)
        stages = [(f"s{i}", nn.Sequential(OrderedDict((f"b{j}", b.export()) for j, b in enumerate(blocks))))
                  for i, blocks in enumerate(self._active_blocks())]
        return nn.Sequential(OrderedDict([("stem", self.stem.export()), *stages, ("pool", GlobalAvgPool()),
                                          ("classifier", self.classifier.export())]))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)


def default_resolutions(input_size: Sequence[int]) -> list[int]:
    """Half, three quarters and all of the data's smaller side (at least 8 px)."""
    side = min(int(s) for s in input_size)
    return sorted({max(8, side * k // 4) for k in (2, 3, 4)})


@supernets.register("elastic_resnet", config=ResNetConfig)  # the registry hands the builder only these keys
def elastic_resnet(in_channels: int = 3, num_classes: int = 10, input_size: tuple[int, int] | None = None,
                   **overrides: Any) -> ElasticResNet:
    """Small ResNet with elastic depth and width per stage, and elastic resolution up to the data's size."""
    if input_size is not None:
        overrides.setdefault("image_size", list(input_size))
        overrides.setdefault("resolutions", default_resolutions(input_size))
    return ElasticResNet(ResNetConfig(in_channels=in_channels, num_classes=num_classes, **overrides))
