"""Few-shot latency prediction on new devices, meta-learned from the latencies of many other devices."""

from predictors.latency.adapted import AdaptedLatencyPredictor
from predictors.latency.meta import MetaLatencyPredictor

__all__ = ["AdaptedLatencyPredictor", "MetaLatencyPredictor"]
