"""The kernel and the uncertainty of digit classifiers, grouped by class.

An analogue of Fig. 4 of Khan et al. (2019) on scikit-learn's 8x8 digits
(``load_digits``) instead of MNIST. Half of the digits (stratified) train two
64-32-K tanh networks with prior precision delta = 1, one on all ten classes
and one on the digits 0 and 1 only; the other half is the test set. On a
subset of 300 test examples stratified by class (each digit's share, 29 to 31
of each; ``kernel(..., subset_size=300, subset_strategy='stratified')``),
grouped by class:

* the kernel ``J(x) J(x')^T / delta`` (``mode='trace'``, the sum of the
  per-class kernels, as the paper draws it), normalised to
  ``k(x, x') / sqrt(k(x, x) k(x', x'))``: a few examples with large
  Jacobians would otherwise leave the rest white;
* the predictive probabilities, and the diagonals of the epistemic and
  aleatoric parts of the label covariance (Eq. 48), per class, on the
  paper's colour scale of 0 to 0.25 (the largest aleatoric variance).

What does the 0/1 network say about a 7? It has to call it a 0 or a 1, and
it mostly says 1, with the aleatoric variance of a coin that is not far from
fair; the epistemic variance is what tells that it has never seen such a
digit: orders of magnitude above that of the 0s and 1s (hundreds to
thousands of times, depending on the subset drawn).

The script prints the test accuracy, a table per digit and the kernel's
mean within and across classes. Measured on a busy 2-core machine: about
20 s; ``--quick`` (50 test examples, about 5 per class, small networks, 100
iterations) about 4 s.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier, KernelDisplay, UncertaintyDisplay

from _sweep import pyplot, save_figure


def kernel_contrast(K, y):
    """Mean normalised kernel ``k(x, x') / sqrt(k(x, x) k(x', x'))`` within and across
    classes."""
    scale = np.sqrt(np.diag(K))
    K = K / np.outer(scale, scale)
    same = y[:, None] == y[None, :]
    return K[same].mean(), K[~same].mean()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="50 test examples, 64-8-K networks, 100 iterations")
    parser.add_argument("--output", type=Path, default=Path("digits_kernel.png"),
                        help="figure file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    network = dict(hidden_layer_sizes=(8,) if args.quick else (32,), prior_precision=1.0,
                   max_iter=100 if args.quick else 5000, random_state=0)
    binary = np.isin(y_train, [0, 1])
    with warnings.catch_warnings():
        # --quick stops training early on purpose.
        warnings.simplefilter("ignore" if args.quick else "default", ConvergenceWarning)
        networks = {
            "all ten digits": DNN2GPClassifier(**network).fit(X_train, y_train),
            "digits 0 and 1": DNN2GPClassifier(**network).fit(X_train[binary], y_train[binary]),
        }
    hidden = network["hidden_layer_sizes"][0]
    test_binary = np.isin(y_test, [0, 1])
    for name, clf in networks.items():
        seen = test_binary if len(clf.classes_) == 2 else slice(None)
        print(f"64-{hidden}-{clf.module_[-1].out_features} network on {name}: "
              f"{clf.n_iter_} L-BFGS iterations, test accuracy on its classes "
              f"{clf.score(X_test[seen], y_test[seen]):.3f}")

    # The paper's Fig. 4 shows a stratified subset of the test set. The draw depends only
    # on the labels and random_state, so both networks' kernels are on the same rows.
    subset = dict(subset_size=50 if args.quick else 300, subset_strategy="stratified",
                  labels=y_test, random_state=0, return_indices=True)
    kernels = {}
    for name, clf in networks.items():
        kernels[name], shown = clf.kernel(X_test, **subset)
    X_shown, y_shown = X_test[shown], y_test[shown]
    ten, two = networks.values()
    p_ten, p_two = ten.predict_proba(X_shown), two.predict_proba(X_shown)
    (epi_ten, ale_ten), (epi_two, ale_two) = (clf.predict_uncertainty(X_shown)
                                              for clf in (ten, two))
    low, high = np.bincount(y_shown).min(), np.bincount(y_shown).max()
    each = f"{low}" if low == high else f"{low} to {high}"
    print(f"\nPer test digit ({each} each), means of: for the ten-class network the "
          "probability of the true class and the epistemic / aleatoric variance of its label;")
    print("for the 0/1 network p(1) and the variances of its label (Eq. 48).")
    print(f"{'digit':>5} | {'p(true)':>8} {'epistemic':>10} {'aleatoric':>10} | "
          f"{'p(1)':>6} {'epistemic':>10} {'aleatoric':>10}")
    for digit in range(10):
        rows = y_shown == digit
        true = p_ten[rows, digit]
        print(f"{digit:>5} | {true.mean():8.3f} {epi_ten[rows, digit].mean():10.4f} "
              f"{ale_ten[rows, digit].mean():10.4f} | {p_two[rows, 1].mean():6.3f} "
              f"{epi_two[rows, 1].mean():10.4f} {ale_two[rows, 1].mean():10.4f}")
    sevens, known = y_shown == 7, np.isin(y_shown, [0, 1])
    ratio = epi_two[sevens, 1].mean() / epi_two[known, 1].mean()
    print(f"The 0/1 network calls {np.mean(p_two[sevens, 1] > 0.5):.0%} of the 7s a 1 (mean "
          f"p(1) {p_two[sevens, 1].mean():.2f}), with an epistemic variance {ratio:.0f} times "
          "that of the 0s and 1s it was trained on.")

    print("\nNormalised kernel k(x, x') / sqrt(k(x, x) k(x', x')), mean within / across "
          "classes:")
    for name, K in kernels.items():
        within, across = kernel_contrast(K, y_shown)
        print(f"  network on {name}: {within:.3f} / {across:.3f}")
    plot(networks, X_shown, y_shown, args.output)
    print(f"time taken: {time.perf_counter() - start:.0f} s")


def plot(networks, X, y, path):
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.4), layout="constrained",
                             gridspec_kw={"width_ratios": [1.6, 1, 1, 1]})
    for row, (name, clf) in zip(axes, networks.items()):
        # Normalised: a few examples with large Jacobians would whiten the rest.
        KernelDisplay.from_estimator(clf, X, y, normalize=True, ax=row[0])
        row[0].set_title(f"network on {name}: normalised kernel", fontsize=10)
        UncertaintyDisplay.from_estimator(clf, X, y, kind="per_class", vmax=0.25, ax=row[1:])
        for ax, title in zip(row[1:], ("predictive probability", "epistemic variance",
                                       "aleatoric variance")):
            ax.set_title(title, fontsize=10)
    save_figure(fig, path, dpi=64)


if __name__ == "__main__":
    main()
