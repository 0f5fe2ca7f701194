"""
A convolutional network as a Gaussian process
=============================================

Any torch module can be the network: ``module`` takes a factory
``(n_features, n_outputs) -> torch.nn.Module``, here a class with one
convolution over the 8x8 digits of scikit-learn's ``load_digits``. ``fit``
trains it, builds its Laplace-GGN posterior, and gives it the same GP view as
the built-in MLP: class probabilities that use the uncertainty, the entropy
that flags noise images, and the kernel ``J(x) J(x')^T`` between digits.

The paper's Fig. 4 studies a LeNet-style network on MNIST; this is a small
analogue. By default the example trains on 300 digits for 300 iterations (a
few seconds); ``DNN2GP_EXAMPLES_FULL=1`` trains on all 1,257 training digits
to convergence (about a minute on two CPU cores).
"""

# %%
# The module
# ----------
# A top-level class, so that the estimator can clone and pickle it; the input
# arrives as 64 features and is reshaped inside ``forward``.

import os
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from torch import nn

from sklearn_dnn2gp import DNN2GPClassifier, KernelDisplay


class SmallCNN(nn.Module):
    """Conv(1 -> 8, 3x3) - tanh - max-pool - Linear."""

    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.features = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3),
                                      nn.Tanh(), nn.MaxPool2d(2), nn.Flatten())
        self.classify = nn.Linear(8 * 3 * 3, n_outputs)

    def forward(self, x):
        return self.classify(self.features(x))


# %%
# Training and its posterior
# --------------------------

full = os.environ.get("DNN2GP_EXAMPLES_FULL") == "1"
start = time.perf_counter()
X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
if not full:
    X_train, y_train = X_train[:300], y_train[:300]
with warnings.catch_warnings():
    if not full:  # the short run stops training early on purpose
        warnings.simplefilter("ignore", ConvergenceWarning)
    clf = DNN2GPClassifier(module=SmallCNN, prior_precision=1.0, random_state=0,
                           max_iter=5000 if full else 300).fit(X_train, y_train)
print(f"SmallCNN (P = {clf.posterior_.n_parameters:,}), "
      f"{type(clf.posterior_).__name__}, trained on {len(X_train)} digits")

# %%
# What the posterior says on digits and on noise
# ----------------------------------------------
# The plug-in softmax against the default predictive (the mean-field link at
# the temperature and residual ``fit`` chose), on the test digits and on 200
# images of uniform noise.


def entropy(p):
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(1)


noise = np.random.RandomState(0).uniform(0, 1, (200, 64))
for link in ("plugin", "meanfield"):
    proba = clf.predict_proba(X_test, link)
    print(f"{link:>9}: test accuracy {np.mean(clf.classes_[proba.argmax(1)] == y_test):.4f}, "
          f"NLL {log_loss(y_test, proba, labels=clf.classes_):.4f}, mean entropy on digits "
          f"{entropy(proba).mean():.3f}, on noise "
          f"{entropy(clf.predict_proba(noise, link)).mean():.3f}")

# %%
# The kernel between digits
# -------------------------
# ``J(x) J(x')^T`` summed over the classes: its mean over pairs of test digits
# of the same class and of different classes, and as a heat map on the first
# 200 test digits grouped by class. Larger within a class means the network's
# features group the digits by class.

K = clf.kernel(X_test)
same = np.mean([K[np.ix_(y_test == c, y_test == c)].mean() for c in clf.classes_])
other = np.mean([K[np.ix_(y_test == c, y_test == d)].mean()
                 for c in clf.classes_ for d in clf.classes_ if c != d])
print(f"kernel: mean within a class {same:.3f}, between classes {other:.3f}")

import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
order = np.argsort(y_test[:200], kind="stable")
KernelDisplay.from_estimator(clf, X_test[:200][order], y_test[:200][order], normalize=True,
                             ax=ax)
ax.set_title("SmallCNN: normalised kernel on 200 test digits", fontsize=10)
print(f"time taken: {time.perf_counter() - start:.1f} s")

if os.environ.get("DNN2GP_FIGURE"):
    from _sweep import save_figure  # a PNG of 256 colours, a third of the size

    save_figure(fig, os.environ["DNN2GP_FIGURE"], dpi=72)
