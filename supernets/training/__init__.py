"""Supernet training: recipes (sandwich, progressive shrinking) run by one loop with in-place distillation,
checkpointed within epochs (crash-safe resume) and data-parallel under torchrun (supernets.training.distributed)."""

from nasengine.supernets.training import distributed
from nasengine.supernets.training.loop import (CHECKPOINT_EVERY_SECONDS, CHECKPOINT_EVERY_STEPS, Checkpointing,
                                               EpochData, TrainHooks, TrainSettings, train_step, train_supernet)
from nasengine.supernets.training.recipes import (RECIPES, Phase, ProgressiveShrinking, Recipe, Sandwich, SingleArch,
                                                  get_recipe)

__all__ = ["CHECKPOINT_EVERY_SECONDS", "CHECKPOINT_EVERY_STEPS", "Checkpointing", "EpochData", "Phase",
           "ProgressiveShrinking", "RECIPES", "Recipe", "Sandwich", "SingleArch", "TrainHooks", "TrainSettings",
           "distributed", "get_recipe", "train_step", "train_supernet"]
