"""The units of the targets: what the network fits against what the user sees.

A regressor with ``normalize_y`` trains on ``z = (y - mean) / std`` per target;
:class:`TargetScaling` holds that map and everything that crosses it (the
predictive mean and variances, the GP view, the log Jacobian that turns the
evidence of ``z`` into that of ``y``). A classifier's targets are labels: the
identity, :class:`SameUnits`.
"""

import numpy as np


class TargetScaling:
    """``z = (y - mean) / std`` per target (``mean = 0``, ``std = 1`` without
    normalisation), fitted on ``total_weight`` of sample weight; ``spread`` is
    y's own (weighted) std either way."""

    def __init__(self, mean, std, normalized, total_weight, spread):
        self.mean, self.std = mean, std
        self.normalized, self.total_weight, self.spread = normalized, total_weight, spread

    @classmethod
    def of(cls, Y, weights, normalize):
        """The scaling of ``Y`` (n, K): its (weighted) moments when ``normalize``."""
        total_weight = float(len(Y) if weights is None else np.sum(weights))
        mean, std = target_moments(Y, weights)
        if normalize:
            return cls(mean, std, True, total_weight, std)
        k = Y.shape[1]
        return cls(np.zeros(k), np.ones(k), False, total_weight, std)

    def to_network(self, Y):
        return (Y - self.mean) / self.std

    def to_output(self, values):
        return values * self.std + self.mean

    @property
    def output_scale(self):
        """Per-output factor from the network's outputs to the units of y, or None."""
        return self.std if self.normalized else None

    def gp_to_output(self, gp):
        """A GP view (``prior_mean``, ``kernel``, ``targets``, ``noise_precision``) in
        the units of y."""
        n, k = gp["targets"].shape
        std = np.tile(self.std, n)
        return {"prior_mean": gp["prior_mean"] * std + np.tile(self.mean, n),
                "kernel": gp["kernel"] * np.outer(std, std),
                "targets": self.to_output(gp["targets"]),
                "noise_precision": gp["noise_precision"] / np.outer(self.std, self.std)}

    def log_jacobian(self, total_weight):
        """``sum_i w_i sum_k log std_k``: the log Jacobian of normalising y, which
        turns the evidence of the normalised targets into that of y."""
        return total_weight * float(np.log(self.std).sum())

    def evidence_of_y(self, value):
        """The evidence of the training targets in their own units."""
        return value - self.log_jacobian(self.total_weight)


class SameUnits:
    """The network fits the targets as they are (class labels)."""

    normalized = False
    output_scale = None

    def to_output(self, values):
        return values

    def gp_to_output(self, gp):
        return gp

    def log_jacobian(self, total_weight):
        return 0.0

    def evidence_of_y(self, value):
        return value


def target_moments(Y, weights):
    """Per-target (weighted) mean and std of ``Y``; a std of zero becomes 1, so
    that constant targets normalise to zeros."""
    w = np.ones(len(Y)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if total <= 0:
        return np.zeros(Y.shape[1]), np.ones(Y.shape[1])
    mean = w @ Y / total
    std = np.sqrt(np.maximum(w @ (Y - mean) ** 2 / total, 0.0))
    scale = np.abs(mean).clip(min=1.0)
    std[~(std > 1e-12 * scale)] = 1.0
    return mean, std
