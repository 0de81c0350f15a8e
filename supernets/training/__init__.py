"""Supernet training: recipes (sandwich, progressive shrinking) run by one loop with in-place or fixed-teacher
distillation and a registry of subnet samplers,
checkpointed within epochs (crash-safe resume) and data-parallel under torchrun (supernets.training.distributed)."""

from nasengine.supernets.training import distributed
from nasengine.supernets.training.loop import (CHECKPOINT_EVERY_SECONDS, CHECKPOINT_EVERY_STEPS, Checkpointing,
                                               EpochData, StepRule, TrainHooks, TrainSettings, train_step,
                                               train_supernet)
from nasengine.supernets.training.samplers import SAMPLERS, SubnetSampler, get_sampler
from nasengine.supernets.training.teacher import FrozenTeacher
from nasengine.supernets.training.recipes import (RECIPES, Phase, ProgressiveShrinking, Recipe, Sandwich, SingleArch,
                                                  get_recipe)

__all__ = ["CHECKPOINT_EVERY_SECONDS", "CHECKPOINT_EVERY_STEPS", "Checkpointing", "EpochData", "FrozenTeacher",
           "Phase", "ProgressiveShrinking", "RECIPES", "Recipe", "SAMPLERS", "Sandwich", "SingleArch", "StepRule",
           "SubnetSampler", "TrainHooks", "TrainSettings", "distributed", "get_recipe", "get_sampler", "train_step",
           "train_supernet"]
