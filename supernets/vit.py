"""Elastic Vision Transformer: depth, embedding dim, heads and MLP ratio per layer (first-k weight entanglement).

Images are cut into patches by a strided convolution, a class token and learned positions are added, pre-norm
encoder layers follow, and the class token's final LayerNorm feeds the classifier. Smaller subnets use the first
layers, the first embedding channels, the first heads and the first hidden units of the largest one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasengine.kernels.transformer import ClassToken, ElasticEncoderLayer, ElasticLayerNorm, PatchEmbedding
from nasengine.kernels.ops import ElasticLinear
from nasengine.search_spaces.builtin.transformer import encoder_space
from nasengine.search_spaces.space import Arch, Space
from nasengine.supernets.base import FamilyConfig, Supernet
from nasengine.supernets.registry import register


def vit_space(depths: Sequence[int], dims: Sequence[int], heads: Sequence[int], mlp_ratios: Sequence[float],
              name: str = "vit") -> Space:
    """depth; embed_dim (shared by all layers, as the residual stream); per layer heads and MLP ratio."""
    return encoder_space(depths, ("embed_dim", dims), [("heads", heads, "heads"), ("mlp_ratio", mlp_ratios, "mlp")],
                         name)


@dataclass(frozen=True)
class ViTConfig(FamilyConfig):
    """What builds an ElasticViT (config.json's `kwargs`, `--set KEY=JSON` on the command line)."""

    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 16
    patch: int = 4
    depths: Sequence[int] = (2, 3, 4)
    dims: Sequence[int] = (32, 48, 64)
    heads: Sequence[int] = (2, 3, 4)
    head_dim: int = 16
    mlp_ratios: Sequence[float] = (2.0, 3.0, 4.0)


class ElasticViT(Supernet):
    """ViT supernet; head dimension is fixed, so attention width follows the number of heads."""

    def __init__(self, config: ViTConfig = ViTConfig()):
        in_channels, num_classes, image_size = config.in_channels, config.num_classes, config.image_size
        patch = config.patch
        depths, dims, heads, head_dim = config.depths, config.dims, config.heads, config.head_dim
        mlp_ratios = config.mlp_ratios
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of the patch size {patch}")
        super().__init__(vit_space(depths, dims, heads, mlp_ratios))
        self._config: dict[str, Any] = {
            "in_channels": in_channels, "num_classes": num_classes, "image_size": image_size, "patch": patch,
            "depths": sorted(depths), "dims": sorted(dims), "heads": sorted(heads), "head_dim": head_dim,
            "mlp_ratios": sorted(float(r) for r in mlp_ratios)}
        self.in_channels, self.image_size, self.patch = in_channels, image_size, patch
        max_dim, tokens = max(dims), (image_size // patch) ** 2
        self.proj_weight = nn.Parameter(torch.empty(max_dim, in_channels, patch, patch))
        nn.init.kaiming_normal_(self.proj_weight, mode="fan_out")
        self.proj_bias = nn.Parameter(torch.zeros(max_dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, max_dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, max_dim) * 0.02)
        max_hidden = int(max_dim * max(mlp_ratios))
        self.layers = nn.ModuleList(ElasticEncoderLayer(max_dim, max(heads), head_dim, max_hidden)
                                    for _ in range(max(depths)))
        self.norm = ElasticLayerNorm(max_dim)
        self.classifier = ElasticLinear(max_dim, num_classes)
        self.embed_dim = max_dim
        self.set_active(self.space.max())

    def _activate(self, arch: Arch) -> None:
        dim = int(arch["embed_dim"])
        self.embed_dim = dim
        for i in range(arch["depth"]):
            hidden = int(dim * float(arch[f"l{i}.mlp_ratio"]))
            self.layers[i].set_active(dim, int(arch[f"l{i}.heads"]), self._config["head_dim"], hidden)
        self.norm.set_active(dim)
        self.classifier.set_active(dim)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        d = self.embed_dim
        x = F.conv2d(x, self.proj_weight[:d], self.proj_bias[:d], stride=self.patch).flatten(2).transpose(1, 2)
        return torch.cat([self.cls[..., :d].expand(x.shape[0], -1, -1), x], dim=1) + self.pos[..., :d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._embed(x)
        for layer in self.layers[: self._active["depth"]]:
            x = layer(x)
        return self.classifier(self.norm(x)[:, 0])

    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        return (self.in_channels, self.image_size, self.image_size)

    def input_transform(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return {"resize": [self.image_size, self.image_size]}

    @torch.no_grad()
    def _export_active(self) -> nn.Module:
        d = self.embed_dim
        embed = PatchEmbedding(self.in_channels, d, self.patch, (self.image_size // self.patch) ** 2)
        embed.proj.weight.copy_(self.proj_weight[:d])
        embed.proj.bias.copy_(self.proj_bias[:d])
        embed.cls.copy_(self.cls[..., :d])
        embed.pos.copy_(self.pos[..., :d])
        layers = nn.Sequential(OrderedDict((f"l{i}", layer.export())
                                           for i, layer in enumerate(self.layers[: self._active["depth"]])))
        return nn.Sequential(OrderedDict(embed=embed, layers=layers, norm=self.norm.export(), token=ClassToken(),
                                         classifier=self.classifier.export()))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)


@register("vit", config=ViTConfig)
def vit(in_channels: int = 3, num_classes: int = 10, input_size: tuple[int, int] | None = None,
        **overrides: Any) -> ElasticViT:
    """Elastic ViT for any image task (elastic depth, embedding dim, heads and MLP ratio per layer)."""
    if input_size is not None and "image_size" not in overrides:
        side = min(int(s) for s in input_size)
        patch = int(overrides.get("patch", 4))
        overrides["image_size"] = max(patch, side // patch * patch)
    return ElasticViT(ViTConfig(in_channels=in_channels, num_classes=num_classes, **overrides))


@register("vit_digits", task="digits", config=ViTConfig)
def vit_digits(input_size: tuple[int, int] | None = None, **overrides: Any) -> ElasticViT:
    """Elastic ViT for 8x8 digits upsampled to 16 px, 4x4 patches (the digits default of the ViT family)."""
    return ElasticViT(ViTConfig(**overrides))
