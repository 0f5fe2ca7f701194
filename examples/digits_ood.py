"""Out-of-distribution detection on digits by thresholding the confidence: DNN2GP against an MLP.

scikit-learn's 8x8 digits (``load_digits``) are split 70/30, stratified;
two pipelines of a ``StandardScaler`` and a 64-50-10 network are fitted on
the training part: a ``DNN2GPClassifier`` (whose class probabilities use the
Laplace posterior, seen as a GP) and scikit-learn's ``MLPClassifier``. An
input is called out of distribution when the classifier's confidence, its
largest class probability (``--measure entropy``: its negative predictive
entropy), is at or below a threshold. Three out-of-distribution sets, each
the size of the test set:

* uniform noise: images of pixels drawn uniformly from 0 to 16 (the range
  of the digits' pixels);
* shuffled digits: the test digits, each with its 64 pixels permuted;
* shifted digits: the test digits times 10, far outside the training range.

A :class:`~sklearn_dnn2gp.plotting.ConfidenceDisplay` per classifier draws
the empirical CDFs of the confidence on the test digits and on each set,
with the AUROC of telling the test digits from that set by the confidence
(1: a threshold separates them; 0.5: no better than chance; below 0.5: more
confident out of distribution than in it). The script prints the test
accuracies and the AUROCs. The README's figure is made by ``python
examples/digits_ood.py --output docs/digits_ood.png``. One torch thread;
about 20 s on a 2-core machine; ``--quick`` (a 64-8-10 network, 100
iterations, a third of the test set) a few seconds.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier
from sklearn_dnn2gp.plotting import ConfidenceDisplay

from _sweep import pyplot, save_figure


def ood_sets(X_test, rng):
    """The out-of-distribution sets, each the shape of ``X_test``."""
    return {
        "uniform noise": rng.uniform(0, 16, size=X_test.shape),
        "shuffled digits": np.array([rng.permutation(row) for row in X_test]),
        "shifted digits (x10)": X_test * 10,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="64-8-10 networks, 100 iterations, a third of the test set")
    parser.add_argument("--measure", choices=["max_proba", "entropy"], default="max_proba",
                        help="the confidence: largest class probability or negative entropy")
    parser.add_argument("--output", type=Path, default=Path("digits_ood.png"),
                        help="figure file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    if args.quick:
        X_test, y_test = X_test[::3], y_test[::3]
    network = dict(hidden_layer_sizes=(8,), max_iter=100) if args.quick else {}
    classifiers = {
        "DNN2GPClassifier": make_pipeline(
            StandardScaler(), DNN2GPClassifier(random_state=0, **network)),
        "MLPClassifier": make_pipeline(
            StandardScaler(), MLPClassifier(random_state=0, **{"max_iter": 1000, **network})),
    }
    with warnings.catch_warnings():
        # --quick stops training early on purpose.
        warnings.simplefilter("ignore" if args.quick else "default", ConvergenceWarning)
        for name, clf in classifiers.items():
            clf.fit(X_train, y_train)
            print(f"{name}: test accuracy {clf.score(X_test, y_test):.3f}")
    X_out = ood_sets(X_test, np.random.RandomState(0))

    plt = pyplot()
    if plt is None:  # the displays compute the AUROCs as they draw
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained", sharex=True,
                             sharey=True)
    displays = {name: ConfidenceDisplay.from_estimator(clf, X_test, X_out,
                                                       measure=args.measure, name=name,
                                                       ax=ax)
                for (name, clf), ax in zip(classifiers.items(), axes)}
    print(f"\nAUROC of telling the {len(X_test)} test digits from each set by the confidence "
          f"({args.measure}; 1 = separable, 0.5 = chance):")
    print(f"{'':>22} " + " ".join(f"{name:>16}" for name in displays))
    for key in X_out:
        print(f"{key:>22} " + " ".join(f"{d.auroc_[key]:16.3f}" for d in displays.values()))
    fig.suptitle(f"digits: confidence on {len(X_test)} test digits and on out-of-distribution "
                 "inputs", fontsize=11)
    save_figure(fig, args.output, dpi=72)
    print(f"time taken: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
