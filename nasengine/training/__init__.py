"""Train: a registered supernet family on a task, once, resumably (`nasengine train`), and a trained supernet
directory loaded back with the plugins it was built with."""

from nasengine.training.loading import load_trained
from nasengine.training.run import TrainRequest, train

__all__ = ["TrainRequest", "load_trained", "train"]
