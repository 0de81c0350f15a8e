"""Source encoder: predicts every source device's standardized log-latency from the encoding (a shared basis)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from nasengine.predictors.metrics import spearman_rho

_REL_ALPHAS = np.logspace(-6, 1, 29)


def ridge_gcv(F: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge of each column of Y (NaN = missing) on F, penalty per column by generalized cross-validation."""
    n, p = F.shape
    coef = np.zeros((p, Y.shape[1]))
    intercept = np.zeros(Y.shape[1])
    measured = ~np.isnan(Y)
    patterns: dict[bytes, list[int]] = {}
    for j in range(Y.shape[1]):
        patterns.setdefault(np.packbits(measured[:, j]).tobytes(), []).append(j)
    for cols in patterns.values():
        rows = measured[:, cols[0]]
        Fr, Yr = F[rows], Y[rows][:, cols]
        m = Fr.shape[0]
        mu, ym = Fr.mean(0), Yr.mean(0)
        Fc, Yc = Fr - mu, Yr - ym
        dual = Fc.shape[1] > m  # more features than archs: work with the m x m Gram matrix
        s2, V = np.linalg.eigh(Fc @ Fc.T if dual else Fc.T @ Fc)
        ok = s2 > 1e-9 * max(s2.max(), 1e-300)
        s2, V = s2[ok], V[:, ok]
        uty = V.T @ Yc if dual else (V.T @ (Fc.T @ Yc)) / np.sqrt(s2)[:, None]  # (q, c)
        uty2 = uty**2
        yy = (Yc**2).sum(0)
        best = np.full(len(cols), np.inf)
        best_a = np.zeros(len(cols))
        for a in _REL_ALPHAS * m:
            shrink = a / (s2 + a)
            resid = yy - uty2.sum(0) + (shrink[:, None] ** 2 * uty2).sum(0)
            dof = m - (s2 / (s2 + a)).sum()
            gcv = m * np.maximum(resid, 0.0) / max(dof, 1e-9) ** 2
            better = gcv < best
            best[better], best_a[better] = gcv[better], a
        if dual:
            b = Fc.T @ (V @ (uty / (s2[:, None] + best_a[None, :])))
        else:
            b = V @ (uty * np.sqrt(s2)[:, None] / (s2[:, None] + best_a[None, :]))
        coef[:, cols] = b
        intercept[cols] = ym - mu @ b
    return coef, intercept


def _silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x), numerically safe."""
    return x / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def _train_mlp(F: np.ndarray, R: np.ndarray, seed: int, hidden: int) -> list[np.ndarray]:
    """Fit a 2-hidden-layer SiLU MLP to residual targets R (NaN masked); returns weights for numpy inference."""
    import torch  # training only; inference is numpy

    n, p = F.shape
    mask = ~np.isnan(R)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small net: one thread is as fast and makes the result independent of the core count
    try:
        return _train_torch(torch, F, R, mask, seed, hidden)
    finally:
        torch.set_num_threads(threads)


def _train_torch(
    torch: Any, F: np.ndarray, R: np.ndarray, mask: np.ndarray, seed: int, hidden: int
) -> list[np.ndarray]:
    """Training loop of _train_mlp (torch passed in so it is only imported when an MLP is trained)."""
    n, p = F.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Dropout(0.1),
            torch.nn.Linear(p, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, R.shape[1]),
        )
        Ft = torch.tensor(F, dtype=torch.float32)
        Rt = torch.tensor(np.nan_to_num(R), dtype=torch.float32)
        Mt = torch.tensor(mask, dtype=torch.float32)
        batch = min(128, n)
        steps = int(np.clip(40 * n / batch, 400, 2000))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
        gen = torch.Generator().manual_seed(seed)
        net.train()
        done = 0
        while done < steps:
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n - batch + 1, batch):
                b = perm[i : i + batch]
                err = (net(Ft[b]) - Rt[b]) ** 2 * Mt[b]
                loss = err.sum() / Mt[b].sum().clamp(min=1.0)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                done += 1
                if done >= steps:
                    break
        lin = [m for m in net if isinstance(m, torch.nn.Linear)]
        return [t.detach().double().numpy().copy() for m in lin for t in (m.weight.T, m.bias)]


def _mlp_forward(weights: list[np.ndarray], F: np.ndarray) -> np.ndarray:
    """Numpy forward pass of the residual MLP."""
    h = F
    for i in range(0, len(weights) - 2, 2):
        h = _silu(h @ weights[i] + weights[i + 1])
    return h @ weights[-2] + weights[-1]


@dataclass
class SourceEncoder:
    """Linear (ridge, GCV) map from features to source standardized log-latencies, plus an optional MLP on the
    residuals that is kept only when it beats the linear map on held-out archs."""

    coef: np.ndarray
    intercept: np.ndarray
    mlp: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def fit(cls, F: np.ndarray, Y: np.ndarray, seed: int = 0, mlp: str = "auto", hidden: int = 128) -> "SourceEncoder":
        """Fit on features F (n, p) and targets Y (n, S, NaN = unmeasured); mlp is 'auto', 'always' or 'never'."""
        coef, intercept = ridge_gcv(F, Y)
        enc = cls(coef, intercept)
        if mlp == "never" or (mlp == "auto" and F.shape[0] < 200):
            return enc
        if mlp == "auto" and not _mlp_helps(F, Y, seed, hidden):
            return enc
        enc.mlp = _train_mlp(F, Y - enc.predict(F), seed, hidden)
        return enc

    def predict(self, F: np.ndarray) -> np.ndarray:
        """Predicted standardized log-latency of every source device, (n, S)."""
        out = F @ self.coef + self.intercept
        if self.mlp:
            out = out + _mlp_forward(self.mlp, F)
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that rebuild this encoder."""
        s = {"coef": self.coef, "intercept": self.intercept}
        s.update({f"mlp_{i}": w for i, w in enumerate(self.mlp)})
        return s

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray]) -> "SourceEncoder":
        """Inverse of state()."""
        n_mlp = sum(1 for key in s if key.startswith("mlp_"))
        mlp = [np.asarray(s[f"mlp_{i}"], float) for i in range(n_mlp)]
        return cls(np.asarray(s["coef"], float), np.asarray(s["intercept"], float), mlp)


def _mlp_helps(F: np.ndarray, Y: np.ndarray, seed: int, hidden: int, margin: float = 0.005) -> bool:
    """Hold out 20 % of archs: does ridge + residual MLP rank them better (mean Spearman over devices) by more
    than margin? Rank, not squared error: on heavy-tailed devices the MLP can cut MSE yet rank worse."""
    n = F.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    val, tr = perm[: n // 5], perm[n // 5 :]
    coef, icpt = ridge_gcv(F[tr], Y[tr])
    lin_tr, lin_val = F[tr] @ coef + icpt, F[val] @ coef + icpt
    weights = _train_mlp(F[tr], Y[tr] - lin_tr, seed, hidden)
    both_val = lin_val + _mlp_forward(weights, F[val])
    gains = []
    for j in range(Y.shape[1]):
        ok = ~np.isnan(Y[val, j])
        if ok.sum() >= 5:
            r_lin = spearman_rho(Y[val][ok, j], lin_val[ok, j])
            r_both = spearman_rho(Y[val][ok, j], both_val[ok, j])
            if np.isfinite(r_lin) and np.isfinite(r_both):
                gains.append(r_both - r_lin)
    return bool(gains) and float(np.mean(gains)) > margin
