"""The shared basis: features of an arch that every target device's head is a linear function of."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from nasengine.predictors.latency.encoder import SourceEncoder
from nasengine.predictors.latency.features import FeatureMap

INTERCEPT = 3.0  # constant column; prior sd of the offset in standardized target units


def row_hashes(X: np.ndarray) -> np.ndarray:
    """64-bit hash of every encoding row (rounded to 1e-9), to recognise archs seen in meta-training."""
    Xr = np.round(np.asarray(X, float), 9) + 0.0
    return np.array(
        [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") for r in Xr],
        dtype=np.uint64,
    )


def assemble(
    F: np.ndarray, Zr: np.ndarray, Za: np.ndarray | None, enc_weight: float, exact_weight: float
) -> np.ndarray:
    """Basis matrix: predicted source latencies, optionally measured ones and the raw features, each block scaled
    so that its prior variance per arch is its weight, plus an intercept column."""
    S, p = Zr.shape[1], F.shape[1]
    blocks = [Zr / np.sqrt(S)]
    if exact_weight > 0 and Za is not None:
        blocks.append(Za * np.sqrt(exact_weight / S))
    if enc_weight > 0:
        blocks.append(F * np.sqrt(enc_weight / p))
    blocks.append(np.full((F.shape[0], 1), INTERCEPT))
    return np.hstack(blocks)


def prior_mean(Zr: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Prior mean of a new device: slope stats[2] times the standardized average source device."""
    m = (Zr.mean(1) - stats[0]) / stats[1]
    return stats[2] * m


@dataclass
class Basis:
    """Feature map + source encoder + table of measured source latencies (for exact matches) + hyperparameters."""

    fmap: FeatureMap
    encoder: SourceEncoder
    mean_stats: np.ndarray  # mean and sd of the average predicted source, prior slope on it
    log_scale: float  # typical sd of a device's log-latency, used when the support is too small to tell
    enc_weight: float = 0.0
    exact_weight: float = 0.0
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    z_actual: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    _lookup: dict[int, int] | None = field(default=None, repr=False, compare=False)

    def parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Standardized features, predicted source latencies and (if used) measured ones, NaN filled by predictions."""
        F = self.fmap.transform(X)
        Zr = self.encoder.predict(F)
        if self.exact_weight <= 0 or self.hashes.size == 0:
            return F, Zr, None
        if self._lookup is None:
            self._lookup = {int(h): i for i, h in enumerate(self.hashes)}
        rows = np.array([self._lookup.get(int(h), -1) for h in row_hashes(X)])
        Za = Zr.copy()
        seen = rows >= 0
        if seen.any():
            known = self.z_actual[rows[seen]]
            Za[seen] = np.where(np.isnan(known), Zr[seen], known)
        return F, Zr, Za

    def design(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Basis matrix and prior mean (standardized log-latency units) for the rows of X."""
        F, Zr, Za = self.parts(X)
        return assemble(F, Zr, Za, self.enc_weight, self.exact_weight), prior_mean(Zr, self.mean_stats)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that rebuild this basis (feature map and encoder arrays are prefixed)."""
        s = {f"fmap.{k}": v for k, v in self.fmap.state().items()}
        s.update({f"enc.{k}": v for k, v in self.encoder.state().items()})
        s["mean_stats"] = self.mean_stats
        s["scalars"] = np.array([self.log_scale, self.enc_weight, self.exact_weight])
        if self.exact_weight > 0:
            s["hashes"] = self.hashes
            s["z_actual"] = self.z_actual
        return s

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray]) -> "Basis":
        """Inverse of state()."""
        fmap = FeatureMap.from_state({k[5:]: v for k, v in s.items() if k.startswith("fmap.")})
        enc = SourceEncoder.from_state({k[4:]: v for k, v in s.items() if k.startswith("enc.")})
        log_scale, enc_w, exact_w = (float(v) for v in np.asarray(s["scalars"], float))
        return cls(
            fmap,
            enc,
            np.asarray(s["mean_stats"], float),
            log_scale,
            enc_w,
            exact_w,
            np.asarray(s.get("hashes", np.zeros(0)), np.uint64),
            np.asarray(s.get("z_actual", np.zeros((0, 0))), float),
        )
