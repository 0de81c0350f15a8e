"""Fitted models as plain numpy parameters: how every predictor kind predicts, is saved and is loaded.

Persistence choice: scikit-learn is used only to *fit*; its fitted parameters (ridge coefficients, SVR support
vectors and dual coefficients, the nodes of every boosted tree, MLP weight matrices) are then copied into these
small forms, which predict with numpy alone and serialise to JSON lists. Python's JSON writes floats with
`repr`, which round-trips exactly, so a loaded predictor predicts bit-for-bit what the saved one did, without
pickle or joblib, without refitting and without depending on scikit-learn's internal object layout at load
time. Forms work in standardised space: `FittedPredictor` applies the input and target scalers around them.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from nasengine.search_spaces.registry import Registry


class Form(Protocol):
    """A fitted regressor in numpy form: standardised rows (n, d) in, standardised targets (n,) out."""

    type: str

    def predict(self, Z: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


FORMS: Registry[Any] = Registry("predictor form")
"""form type name -> class with a `from_dict(data)` classmethod (used by `form_from_dict`)."""


def _f64(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _int(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.intp)


@FORMS.register("constant")
class ConstantForm:
    """Predicts one value for every row (the fallback for constant targets)."""

    type = "constant"

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return np.full(Z.shape[0], self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ConstantForm":
        return cls(data["value"])


@FORMS.register("linear")
class LinearForm:
    """z @ coef + intercept (ridge)."""

    type = "linear"

    def __init__(self, coef: np.ndarray, intercept: float):
        self.coef = _f64(coef).ravel()
        self.intercept = float(intercept)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.coef + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LinearForm":
        return cls(data["coef"], data["intercept"])


@FORMS.register("rbf_kernel")
class RBFKernelForm:
    """sum_i dual_i * exp(-gamma * |z - sv_i|^2) + intercept (an RBF support-vector regressor)."""

    type = "rbf_kernel"

    def __init__(self, support: np.ndarray, dual: np.ndarray, intercept: float, gamma: float):
        self.support = _f64(support).reshape(len(np.ravel(dual)), -1)
        self.dual = _f64(dual).ravel()
        self.intercept = float(intercept)
        self.gamma = float(gamma)
        self._sq = np.einsum("ij,ij->i", self.support, self.support)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        if self.dual.size == 0:
            return np.full(Z.shape[0], self.intercept)
        d2 = np.einsum("ij,ij->i", Z, Z)[:, None] + self._sq[None, :] - 2.0 * (Z @ self.support.T)
        return np.exp(-self.gamma * np.maximum(d2, 0.0)) @ self.dual + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "support": self.support.tolist(), "dual": self.dual.tolist(),
                "intercept": self.intercept, "gamma": self.gamma}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RBFKernelForm":
        return cls(data["support"], data["dual"], data["intercept"], data["gamma"])


@FORMS.register("trees")
class TreesForm:
    """init + learning_rate * sum of regression trees (gradient boosting), trees padded to one node count.

    Nodes follow scikit-learn's layout: a leaf has left == -1; a split sends rows with
    float32(z[feature]) <= threshold left (scikit-learn compares its float32 copy of the inputs)."""

    type = "trees"

    def __init__(self, init: float, learning_rate: float, left: Any, right: Any, feature: Any, threshold: Any,
                 value: Any):
        self.init = float(init)
        self.learning_rate = float(learning_rate)
        self.left, self.right, self.feature = _int(left), _int(right), _int(feature)
        self.threshold, self.value = _f64(threshold), _f64(value)
        shapes = {a.shape for a in (self.left, self.right, self.feature, self.threshold, self.value)}
        if len(shapes) != 1 or self.left.ndim != 2:
            raise ValueError(f"tree arrays must share one (n_trees, n_nodes) shape; got {sorted(shapes)}")
        self.depth = self._depth()

    def _depth(self) -> int:
        """Longest root-to-leaf path over all trees (the number of traversal steps predict needs)."""
        depth = 0
        for t in range(self.left.shape[0]):
            stack = [(0, 0)]
            while stack:
                node, d = stack.pop()
                if self.left[t, node] < 0:
                    depth = max(depth, d)
                else:
                    stack += [(self.left[t, node], d + 1), (self.right[t, node], d + 1)]
        return depth

    def predict(self, Z: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """All trees for all rows at once, `chunk` rows at a time (cache-sized), with flat 1-D gathers (about 2x
        faster than 2-D fancy indexing); the same comparisons and summation order as scikit-learn."""
        n_trees, width = self.left.shape
        left, right, feature = self.left.ravel(), self.right.ravel(), np.maximum(self.feature.ravel(), 0)
        threshold, value = self.threshold.ravel(), self.value.ravel()
        roots = np.arange(n_trees) * width  # flat index of each tree's node 0
        out = np.empty(Z.shape[0])
        for start in range(0, Z.shape[0], chunk):
            X32 = np.ascontiguousarray(Z[start : start + chunk], dtype=np.float32)
            n, d = X32.shape
            row_offset = (np.arange(n) * d)[:, None]
            node = np.repeat(roots[None, :], n, axis=0)
            for _ in range(self.depth):
                child = left.take(node)  # -1 at a leaf: the row stays there
                x = X32.ravel().take(row_offset + feature.take(node))  # leaves read feature 0, discarded below
                step = roots + np.where(x <= threshold.take(node), child, right.take(node))
                node = np.where(child < 0, node, step)
            leaf = value.take(node)
            acc = np.full(n, self.init)
            for t in range(n_trees):  # same accumulation order as scikit-learn, tree after tree
                acc += self.learning_rate * leaf[:, t]
            out[start : start + n] = acc
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "init": self.init, "learning_rate": self.learning_rate,
                "left": self.left.tolist(), "right": self.right.tolist(), "feature": self.feature.tolist(),
                "threshold": self.threshold.tolist(), "value": self.value.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TreesForm":
        return cls(data["init"], data["learning_rate"], data["left"], data["right"], data["feature"],
                   data["threshold"], data["value"])


@FORMS.register("mlp")
class MLPForm:
    """A ReLU multilayer perceptron with a linear output (scikit-learn's MLPRegressor forward pass)."""

    type = "mlp"

    def __init__(self, weights: list[Any], biases: list[Any]):
        self.weights = [_f64(w) for w in weights]
        self.biases = [_f64(b).ravel() for b in biases]
        if len(self.weights) != len(self.biases) or not self.weights:
            raise ValueError("an MLP form needs as many bias vectors as weight matrices (at least one)")

    def predict(self, Z: np.ndarray) -> np.ndarray:
        a = Z
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ w + b
            if i < last:
                np.maximum(a, 0.0, out=a)
        return a[:, 0]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "weights": [w.tolist() for w in self.weights],
                "biases": [b.tolist() for b in self.biases]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MLPForm":
        return cls(data["weights"], data["biases"])


@FORMS.register("mean")
class MeanForm:
    """The plain average of member forms' standardised predictions (the ensemble)."""

    type = "mean"

    def __init__(self, members: dict[str, Any]):
        if not members:
            raise ValueError("a mean form needs at least one member")
        self.members = dict(members)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(Z) for m in self.members.values()], axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "members": {k: m.to_dict() for k, m in self.members.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MeanForm":
        return cls({k: form_from_dict(v) for k, v in data["members"].items()})


def form_from_dict(data: dict[str, Any]) -> Form:
    """Rebuild any form from its `to_dict()`; ValueError when the record is not one."""
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError("a saved predictor form must be an object with a 'type'")
    try:
        return FORMS.get(data["type"]).from_dict(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"saved {data['type']!r} form is malformed: missing or bad field {exc}") from None
