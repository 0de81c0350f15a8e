"""The shared basis: features of an arch that every target device's head is a linear function of."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from nasengine.predictors.latency.encoder import SourceEncoder
from nasengine.predictors.latency.features import FeatureMap
from nasengine.predictors.latency.head import PriorGroup

INTERCEPT = 3.0  # constant column; prior sd of the offset in standardized target units


def row_hashes(X: np.ndarray) -> np.ndarray:
    """64-bit hash of every encoding row (rounded to 1e-9), to recognise archs seen in meta-training."""
    Xr = np.round(np.asarray(X, float), 9) + 0.0
    return np.array(
        [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") for r in Xr],
        dtype=np.uint64,
    )


def assemble(
    F: np.ndarray, Zr: np.ndarray, Za: np.ndarray | None, enc_weight: float, exact_weight: float,
    D: np.ndarray | None = None,
) -> np.ndarray:
    """Basis matrix: predicted source latencies, optionally measured ones and the raw features, each block scaled
    so that its prior variance per arch is its weight, then the cost descriptors D (unit prior variance per arch;
    the head rescales this block per device) and an intercept column."""
    S, p = Zr.shape[1], F.shape[1]
    blocks = [Zr / np.sqrt(S)]
    if exact_weight > 0 and Za is not None:
        blocks.append(Za * np.sqrt(exact_weight / S))
    if enc_weight > 0:
        blocks.append(F * np.sqrt(enc_weight / p))
    if D is not None and D.shape[1]:
        blocks.append(D / np.sqrt(D.shape[1]))
    blocks.append(np.full((F.shape[0], 1), INTERCEPT))
    return np.hstack(blocks)


SOURCE_SCALES = (1.0, 0.1)  # keep the sources' prior, or shrink it for a device unlike all of them
DESCRIPTOR_SCALES = (1.0, 0.0, 0.1, 0.3, 3.0)  # how much a device's latency follows the cost descriptors


def prior_groups(n_columns: int, n_sources: int, n_desc: int) -> tuple[PriorGroup, ...]:
    """The head's per-device prior choices over a basis matrix from assemble(): the scale of the predicted
    sources (first columns) and of the cost descriptors (just before the intercept)."""
    groups = [PriorGroup(slice(0, n_sources), SOURCE_SCALES)]
    if n_desc:
        groups.append(PriorGroup(slice(n_columns - 1 - n_desc, n_columns - 1), DESCRIPTOR_SCALES))
    return tuple(groups)


@dataclass
class Descriptors:
    """The trailing `keep.size` columns of an encoding are non-negative costs (MACs, op counts...): log1p, then
    standardized with the meta-training archs' mean and sd; columns constant there (attention MACs of a CNN) are
    dropped, so they cannot swing predictions on other archs."""

    mean: np.ndarray  # of the kept columns
    scale: np.ndarray
    keep: np.ndarray  # bool per descriptor column

    @property
    def count(self) -> int:
        """How many trailing encoding columns are descriptors."""
        return int(self.keep.size)

    @property
    def width(self) -> int:
        """Columns of the descriptor block in the basis."""
        return int(self.keep.sum())

    @classmethod
    def fit(cls, X: np.ndarray, count: int) -> "Descriptors":
        """Learn the standardization of the last `count` columns of X (count 0 = no descriptors)."""
        if count == 0:
            return cls(np.zeros(0), np.ones(0), np.zeros(0, bool))
        raw = cls.raw(X, count)
        sd = raw.std(0)
        keep = sd > 1e-9
        return cls(raw.mean(0)[keep], sd[keep], keep)

    def logged(self, X: np.ndarray) -> np.ndarray:
        """X with its descriptor columns on a log scale (what the feature map and source encoder see)."""
        if self.count == 0:
            return X
        return np.hstack([X[:, : X.shape[1] - self.count], self.raw(X, self.count)])

    @staticmethod
    def raw(X: np.ndarray, count: int) -> np.ndarray:
        """log1p of the descriptor columns (ValueError when one is negative)."""
        cols = X[:, X.shape[1] - count :]
        if np.any(cols < 0):
            raise ValueError("cost descriptors (the encoding's last columns) must be non-negative")
        return np.log1p(cols)

    def transform(self, X: np.ndarray) -> np.ndarray | None:
        """Standardized log descriptors of the rows of X, or None when there are none."""
        return self.standardize(self.logged(X))

    def standardize(self, X_logged: np.ndarray) -> np.ndarray | None:
        """Standardized descriptors from an encoding already passed through logged() (no second log1p)."""
        if self.width == 0:
            return None
        return (X_logged[:, X_logged.shape[1] - self.count :][:, self.keep] - self.mean) / self.scale


def _descriptors_from_state(s: dict[str, np.ndarray]) -> Descriptors:
    """Descriptors saved by Basis.state (none in predictors saved before descriptors existed)."""
    mean = np.asarray(s.get("desc_mean", np.zeros(0)), float)
    keep = np.asarray(s.get("desc_keep", np.ones(mean.size)), bool)
    return Descriptors(mean, np.asarray(s.get("desc_scale", np.ones(mean.size)), float), keep)


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
    descriptors: Descriptors = field(default_factory=lambda: Descriptors.fit(np.zeros((1, 1)), 0))
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    z_actual: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    _lookup: dict[int, int] | None = field(default=None, repr=False, compare=False)

    def parts(self, X: np.ndarray, X_logged: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Standardized features, predicted source latencies and (if used) measured ones, NaN filled by predictions
        (X_logged: X already passed through descriptors.logged, when the caller has it)."""
        F = self.fmap.transform(self.descriptors.logged(X) if X_logged is None else X_logged)
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

    def groups(self, P: np.ndarray) -> tuple[PriorGroup, ...]:
        """The head's prior groups for a basis matrix P of this basis."""
        return prior_groups(P.shape[1], self.encoder.intercept.size, self.descriptors.width)

    def design(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Basis matrix and prior mean (standardized log-latency units) for the rows of X."""
        X_logged = self.descriptors.logged(X)  # log1p and the sign check once per call: scoring is a hot path
        F, Zr, Za = self.parts(X, X_logged)
        D = self.descriptors.standardize(X_logged)
        return assemble(F, Zr, Za, self.enc_weight, self.exact_weight, D), prior_mean(Zr, self.mean_stats)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that rebuild this basis (feature map and encoder arrays are prefixed)."""
        s = {f"fmap.{k}": v for k, v in self.fmap.state().items()}
        s.update({f"enc.{k}": v for k, v in self.encoder.state().items()})
        s["mean_stats"] = self.mean_stats
        s["desc_mean"], s["desc_scale"] = self.descriptors.mean, self.descriptors.scale
        s["desc_keep"] = self.descriptors.keep.astype(np.int8)
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
            _descriptors_from_state(s),
            np.asarray(s.get("hashes", np.zeros(0)), np.uint64),
            np.asarray(s.get("z_actual", np.zeros((0, 0))), float),
        )
