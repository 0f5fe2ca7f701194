"""Calibration of the link approximations: all-weights against last-layer posteriors.

With one isotropic prior on every weight, the all-weights Laplace posterior of a
classifier leaves the logits' Gaussian broad even on confidently classified
points, and its faithful summaries (probit, Monte Carlo) are underconfident; a
last-layer posterior is the known cure. On standardised digits (64-50-10,
70/30 stratified split, prior_precision 1) this prints the test accuracy,
negative log-likelihood and expected calibration error (10 bins) of the
plug-in, probit, MC and bridge probabilities for both posteriors, from the
same trained network.

Run: ``python benchmarks/bench_last_layer_calibration.py`` (under a minute), with
the common flags (``benchmarks/README.rst``): ``--quick`` (a 64-20-10 network),
``--threads N`` (default 1), ``--json PATH``.
"""

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier

from _harness import parser, setup, write_json


def ece(proba, y, bins=10):
    confidence, correct = proba.max(1), proba.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def main(argv=None):
    args = setup(parser(__doc__, quick_help="a 64-20-10 network").parse_args(argv), argv)
    hidden = 20 if args.quick else 50
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    all_weights = DNN2GPClassifier(hidden_layer_sizes=(hidden,), random_state=0)
    all_weights.fit(X_train, y_train)
    # The same trained network: warm-started from it, L-BFGS stops at once.
    last = clone(all_weights).set_params(subset_of_weights="last_layer", warm_start=True,
                                         tol=1e300)
    last.module_ = all_weights.module_
    last.fit(X_train, y_train)
    print(f"digits 64-{hidden}-10, prior_precision 1; test set of", len(y_test))
    print(f"{'posterior':<12} {'link':<7} {'accuracy':>8} {'NLL':>7} {'ECE':>7}")
    results = []
    for name, est in (("all weights", all_weights), ("last layer", last)):
        for link in ("plugin", "probit", "mc", "bridge"):
            proba = est.predict_proba(X_test, link)
            results.append({"posterior": name, "link": link,
                            "accuracy": np.mean(proba.argmax(1) == y_test),
                            "NLL": log_loss(y_test, proba, labels=est.classes_),
                            "ECE": ece(proba, y_test)})
            print(f"{name:<12} {link:<7} {results[-1]['accuracy']:8.4f} "
                  f"{results[-1]['NLL']:7.4f} {results[-1]['ECE']:7.4f}")
    write_json(args, results)


if __name__ == "__main__":
    main()
