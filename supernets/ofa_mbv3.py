"""Once-for-all MobileNetV3: elastic resolution, per-stage depth, per-block kernel size and expand ratio."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from nasengine.kernels import ConvBNAct, ElasticLinear, ElasticMBConv, GlobalAvgPool, LayerSpec, OpSpec
from nasengine.kernels.layers import ChannelPermutable, make_divisible
from nasengine.search_spaces.builtin import elastic_mobilenet_space
from nasengine.search_spaces.space import Arch
from nasengine.supernets.base import FamilyConfig, Layer, Supernet
from nasengine.supernets.registry import register


@dataclass(frozen=True)
class OFAConfig(FamilyConfig):
    """What builds an OFAMobileNetV3 (config.json's `kwargs`, `--set KEY=JSON` on the command line)."""

    in_channels: int = 1
    num_classes: int = 10
    stem_width: int = 16
    stage_widths: Sequence[int] = (24, 40, 64, 96)
    stage_strides: Sequence[int] = (2, 2, 2, 1)
    stage_acts: Sequence[str] = ("relu", "hswish", "hswish", "hswish")
    stage_se: Sequence[bool] = (False, True, False, True)
    head_width: int = 192
    depths: Sequence[int] = (1, 2, 3, 4)
    kernels: Sequence[int] = (3, 5, 7)
    expands: Sequence[float] = (3, 4, 6)
    resolutions: Sequence[int] = (8, 12, 16, 20, 24, 28, 32)
    stem_stride: int = 2
    dropout: float = 0.1
    widths: Sequence[float] = (1.0,)


class OFAMobileNetV3(Supernet):
    """Stem, a fixed first block, elastic stages of inverted residual blocks, and a 1x1 head + classifier.

    With several `widths`, gene `s{i}.width` picks a multiplier of stage i's output width (first-k channels).
    """

    def __init__(self, config: OFAConfig = OFAConfig()):
        in_channels, num_classes, stem_width = config.in_channels, config.num_classes, config.stem_width
        stage_widths = config.stage_widths
        stage_strides, stage_acts, stage_se = config.stage_strides, config.stage_acts, config.stage_se
        head_width = config.head_width
        depths, kernels, expands, resolutions = config.depths, config.kernels, config.expands, config.resolutions
        stem_stride, dropout, widths = config.stem_stride, config.dropout, config.widths
        n = len(stage_widths)
        if not (len(stage_strides) == len(stage_acts) == len(stage_se) == n):
            raise ValueError("stage_widths, stage_strides, stage_acts and stage_se need one entry per stage")
        mults = sorted(float(w) for w in widths)
        if not mults or not all(0 < w <= 1 for w in mults):
            raise ValueError(f"width multipliers must be in (0, 1], got {list(widths)}")
        super().__init__(elastic_mobilenet_space(n, depths, kernels, expands, resolutions, name="ofa_mbv3",
                                                 widths=mults if len(mults) > 1 else None))
        self._config: dict[str, Any] = {
            "in_channels": in_channels, "num_classes": num_classes, "stem_width": stem_width,
            "stage_widths": list(stage_widths), "stage_strides": list(stage_strides), "stage_acts": list(stage_acts),
            "stage_se": list(stage_se), "head_width": head_width, "depths": sorted(depths), "kernels": sorted(kernels),
            "expands": sorted(expands), "resolutions": sorted(resolutions), "stem_stride": stem_stride,
            "dropout": dropout, "widths": mults,
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
    @staticmethod
    def stage_channels(width: int, mult: float) -> int:
        """Output channels of a stage of `width` channels at multiplier `mult`: make_divisible, capped at `width`."""
        return min(width, make_divisible(width * mult))

    def stage_width(self, arch: Mapping[str, Any], stage: int) -> int:
        """Active output channels of `stage` under `arch` (the fixed multiplier when width is not elastic)."""
        mult = arch.get(f"s{stage}.width", self._config["widths"][-1])
        return self.stage_channels(self._config["stage_widths"][stage], float(mult))

    def _activate(self, arch: Arch) -> None:
        cfg = self._config
        self.stem.set_active(self.in_channels, cfg["stem_width"], 3)
        self.first.set_active(cfg["stem_width"], 3, 1)
        width = cfg["stem_width"]
        for i, blocks in enumerate(self.stages):
            out = self.stage_width(arch, i)
            for j in range(arch[f"s{i}.depth"]):
                blocks[j].set_active(width, arch[f"s{i}.b{j}.kernel"], arch[f"s{i}.b{j}.expand"], out)
                width = out
        self.head.set_active(width, cfg["head_width"])

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

    def _channel_streams(self) -> list[tuple[list[ChannelPermutable], list[ChannelPermutable]]]:
        """(producers, consumers) of each channel stream, in order; a block with `same_stream` joins its in and out.

        Every layer (all blocks at maximum depth) is listed, so one order holds for any depth.
        """
        units: list[Any] = [self.stem, self.first, *(b for stage in self.stages for b in stage), self.head]
        streams: list[tuple[list[ChannelPermutable], list[ChannelPermutable]]] = []
        for k in range(len(units) - 1):
            producer, consumer = units[k], units[k + 1]
            if k > 0 and isinstance(producer, ElasticMBConv) and producer.same_stream:
                streams[-1][0].append(producer)
                streams[-1][1].append(consumer)
            else:
                streams.append(([producer], [consumer]))
        return streams

    @torch.no_grad()
    def sort_stage_channels(self) -> None:
        """Reorder each stage's output channels by importance so narrower widths keep the most important ones.

        Importance of a channel = L1 norm of all consumer weights reading it (expand convs, or depthwise filters
        of blocks without one, the next stage's first block, the head conv), summed. One permutation per stream
        goes to every producer's project conv/BN and every consumer's inputs, so the full-width function is kept.
        """
        stage_blocks = {id(b) for stage in self.stages for b in stage}
        for producers, consumers in self._channel_streams():
            if not any(id(p) in stage_blocks for p in producers):
                continue  # the stem's fixed-width stream
            importance = torch.stack([c.input_importance() for c in consumers]).sum(0)
            order = torch.argsort(importance, descending=True, stable=True)
            for p in producers:
                p.permute_outputs(order)
            for c in consumers:
                c.permute_inputs(order)

    def prepare_phase(self, tags: set[str]) -> None:
        """Entering elastic width or expand ratios: sort stage or hidden channels so narrow subnets keep the best."""
        if "width" in tags:
            self.sort_stage_channels()
        if "expand" in tags:
            for stage in self.stages:
                for block in stage:
                    block.sort_hidden_channels()


def default_resolutions(native: int, count: int = 5) -> list[int]:
    """Up to `count` resolutions in multiples of 4 from 40 % of the native size up to it (OFA: 128..224)."""
    low = max(8, -(-int(0.4 * native) // 4) * 4)
    options = list(range(low, native + 1, 4)) or [native]
    if options[-1] != native:
        options.append(native)
    if len(options) > count:
        picks = {round(i * (len(options) - 1) / (count - 1)) for i in range(count)}
        options = [options[i] for i in sorted(picks)]
    return options


@register("ofa_mbv3", config=OFAConfig)
def ofa_mbv3(in_channels: int = 3, num_classes: int = 10, input_size: tuple[int, int] | None = None,
             **overrides: Any) -> OFAMobileNetV3:
    """MobileNetV3-style once-for-all CNN for any image task (elastic resolution up to the data's size, and width)."""
    if "resolutions" not in overrides and input_size is not None:
        overrides["resolutions"] = default_resolutions(min(int(s) for s in input_size))
    overrides.setdefault("widths", (0.5, 0.75, 1.0))
    return OFAMobileNetV3(OFAConfig(in_channels=in_channels, num_classes=num_classes, **overrides))


@register("ofa_mbv3_digits", task="digits", config=OFAConfig)
def ofa_mbv3_digits(input_size: tuple[int, int] | None = None, **overrides: Any) -> OFAMobileNetV3:
    """MobileNetV3-style once-for-all CNN for 8x8 digits at 8-32 px (elastic r/depth/kernel/expand)."""
    return OFAMobileNetV3(OFAConfig(**overrides))
