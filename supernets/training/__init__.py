"""Supernet training: recipes (sandwich, progressive shrinking) run by one loop with in-place distillation."""

from supernets.training.loop import EpochData, TrainSettings, train_step, train_supernet
from supernets.training.recipes import RECIPES, Phase, ProgressiveShrinking, Recipe, Sandwich, SingleArch, get_recipe

__all__ = ["EpochData", "Phase", "ProgressiveShrinking", "RECIPES", "Recipe", "Sandwich", "SingleArch", "TrainSettings",
           "get_recipe", "train_step", "train_supernet"]
