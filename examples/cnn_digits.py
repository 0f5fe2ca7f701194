"""A small convolutional network on the 8x8 digits as a Gaussian process.

The paper's Fig. 4 studies the kernel and the uncertainty of a LeNet-style
network on MNIST; this is its analogue on scikit-learn's ``load_digits``: a
network with one convolution (given through ``module``), trained on 70% of
the digits, its Laplace-GGN posterior, and what the posterior says on the test
digits and on noise images. It prints the test accuracy and negative
log-likelihood with the plug-in and probit probabilities, the mean predictive
entropy on digits and on noise, and the kernel between classes (the mean of
``J(x) J(x')^T`` over pairs of test digits of each pair of classes: larger on
the diagonal means the network's features group digits by class).

Run ``python examples/cnn_digits.py`` (about a minute on 2 cores; ``--quick``
trains on fewer digits for a few seconds).
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from torch import nn

from sklearn_dnn2gp import DNN2GPClassifier


class SmallCNN(nn.Module):
    """Conv(1 -> 8, 3x3) - tanh - Linear: the input is 64 features, an 8x8 image."""

    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.features = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3),
                                      nn.Tanh(), nn.MaxPool2d(2), nn.Flatten())
        self.classify = nn.Linear(8 * 3 * 3, n_outputs)

    def forward(self, x):
        return self.classify(self.features(x))


def entropy(p):
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="train on 300 digits")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    if args.quick:
        X_train, y_train = X_train[:300], y_train[:300]
    with warnings.catch_warnings():
        if args.quick:  # a short run on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
        clf = DNN2GPClassifier(module=SmallCNN, prior_precision=1.0, random_state=0,
                               max_iter=300 if args.quick else 5000).fit(X_train, y_train)
    print(f"SmallCNN (P = {clf.posterior_.n_parameters:,}), {clf._structure()} posterior, "
          f"trained on {len(X_train)} digits")
    noise = np.random.RandomState(0).uniform(0, 1, (200, 64))
    for link in ("plugin", "probit"):
        proba = clf.predict_proba(X_test, link)
        print(f"  {link:>6}: test accuracy {np.mean(clf.classes_[proba.argmax(1)] == y_test):.4f}"
              f", NLL {log_loss(y_test, proba, labels=clf.classes_):.4f}, mean entropy on "
              f"digits {entropy(proba).mean():.3f}, on noise "
              f"{entropy(clf.predict_proba(noise, link)).mean():.3f}")
    K = clf.kernel(X_test)
    same = np.mean([K[np.ix_(y_test == c, y_test == c)].mean() for c in clf.classes_])
    other = np.mean([K[np.ix_(y_test == c, y_test == d)].mean()
                     for c in clf.classes_ for d in clf.classes_ if c != d])
    print(f"kernel: mean within a class {same:.3f}, between classes {other:.3f}")
    print(f"time taken: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
