"""Few-shot latency prediction on new devices, meta-learned from the latencies of many other devices."""

from nasengine.predictors.latency.adapted import AdaptedLatencyPredictor
from nasengine.predictors.latency.meta import MetaLatencyPredictor

__all__ = ["AdaptedLatencyPredictor", "MetaLatencyPredictor"]
