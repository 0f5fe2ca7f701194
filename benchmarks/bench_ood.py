"""Class probabilities in and out of distribution: the default tempered probit, the
other links, the plug-in, MLPClassifier and laplace-torch (issue 19).

For each data set and activation, ``make_pipeline(StandardScaler(),
DNN2GPClassifier(random_state=0, activation=...))`` is fitted on 70/30
stratified splits (``--splits``, seeds 0, 1, ...), and from each fitted network
the script computes, on the test set, the test NLL, its ratio to the plug-in's
(``softmax(f_{w*})``), ECE (10 bins) and accuracy, for

* ``default``: ``predict_proba`` as it is, the mean-field link with the latent
  covariance tempered at ``temperature_`` plus the residual GP's variance at
  ``residual_scale_``, both chosen by ``fit`` from the training set
  (:mod:`sklearn_dnn2gp._temperature`, :mod:`sklearn_dnn2gp._residual`); ``--link``
  sets another link for it, ``--last-layer`` ``subset_of_weights='last_layer'``;
* ``no residual``: the same network and temperature with ``residual_scale=0``;
* ``probit T=1``: the probit link of the untempered posterior;
* ``probit``, ``mc``: the probit and the Monte-Carlo link (100 draws) at the same
  ``temperature_`` and residual;
* ``bridge``: the Laplace bridge (the same for every temperature);
* ``plugin``: the MAP network's softmax;
* ``MLPClassifier``: scikit-learn's, same split, default settings, ``max_iter=1000``;
* ``laplace-torch``: its recommended configuration on the same trained network
  (last-layer K-FAC, prior precision by its marginal likelihood, GLM predictive
  with probit; :mod:`ood_laplace_torch`); printed only where laplace-torch imports.

Out of distribution (digits): the AUROC of the maximum probability, test digits
against uniform-noise images (pixels uniform in [0, 16]), pixel-shuffled test
digits and test digits times 10. Far away (moons): the mean maximum probability at
``X_test * 10``. Each number is the mean over the splits; ``max`` columns give the
worst split of the NLL ratio.

Also printed: the temperature and residual scale each split chose, the first
split's fit time against a fit with ``temperature=0, residual_scale=0`` (no
choice) in the same run (best of two each), and with
``--grid`` the probit at fixed temperatures and the two criteria of the choice.

Run: ``python benchmarks/bench_ood.py [--datasets digits moons ...]
[--activations tanh relu] [--splits 5] [--grid]`` (the default, one split of
every data set with both activations, takes about 4 minutes on 2 cores), with
the common flags (``benchmarks/README.rst``): ``--quick`` (moons with tanh,
seconds), ``--threads N`` (default 1), ``--json PATH``.
"""

import time
import warnings

import numpy as np
from bench_last_layer_calibration import ece
from ood_laplace_torch import laplace_torch_log_proba
from scipy.special import log_softmax
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_moons
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier

from _harness import parser, setup, write_json

SCALES = np.array([0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0])
DATASETS = {
    "digits": lambda: load_digits(return_X_y=True),
    "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
    "iris": lambda: load_iris(return_X_y=True),
    "wine": lambda: load_wine(return_X_y=True),
    "moons": lambda: make_moons(500, noise=0.3, random_state=0),
}


def softmax_form(f, var):
    """Binary (n, 1) latents as the two-class softmax (logits 0 and f)."""
    if f.shape[1] > 1:
        return f, var
    var2 = np.zeros((len(f), 2, 2))
    var2[:, 1, 1] = var[:, 0, 0]
    return np.hstack([np.zeros_like(f), f]), var2


def probit_log_proba(f, var, c=1.0):
    v = c * np.clip(np.diagonal(var, axis1=1, axis2=2), 0, None)
    return log_softmax(f / np.sqrt(1 + np.pi / 8 * v), axis=1)


def nll(log_proba, codes):
    return -log_proba[np.arange(len(codes)), codes].mean()


def ood_sets(X_test, rng):
    return {"noise": rng.uniform(0, 16, size=X_test.shape),
            "shuffled": np.array([row[rng.permutation(X_test.shape[1])] for row in X_test]),
            "x10": X_test * 10}


def evaluation_sets(name, X_test):
    sets = {"test": X_test}
    if name == "digits":
        sets.update(ood_sets(X_test, np.random.RandomState(0)))
    if name == "moons":
        sets["far"] = X_test * 10
    return sets


def metrics(name, log_proba, codes):
    """Test NLL, ECE, accuracy and the out-of-distribution numbers of one method."""
    proba = np.exp(log_proba["test"])
    row = {"nll": nll(log_proba["test"], codes), "ece": ece(proba, codes),
           "acc": (proba.argmax(1) == codes).mean()}
    inside = proba.max(1)
    if name == "digits":
        for key in ("noise", "shuffled", "x10"):
            outside = np.exp(log_proba[key]).max(1)
            row[key] = roc_auc_score(np.r_[np.ones(len(inside)), np.zeros(len(outside))],
                                     np.r_[inside, outside])
    if name == "moons":
        row["far"] = np.exp(log_proba["far"]).max(1).mean()
    return row


def one_split(name, activation, split, grid, timing, params=None):
    X, y = DATASETS[name]()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=split)
    model = make_pipeline(StandardScaler(), DNN2GPClassifier(
        random_state=0, activation=activation, **(params or {})))
    model.fit(X_train, y_train)
    info = {"T": model[-1].temperature_, "s": model[-1].residual_scale_}
    # The same network (deterministic under random_state) without the residual.
    bare = clone(model).set_params(dnn2gpclassifier__residual_scale=0.0).fit(X_train, y_train)
    if timing:
        # Best of two fits each, alternated, after the one above warmed up torch.
        plain = clone(model).set_params(dnn2gpclassifier__temperature=0.0,
                                        dnn2gpclassifier__residual_scale=0.0)
        times = {"auto": [], "plain": []}
        for _ in range(2):
            for key, estimator in (("plain", plain), ("auto", clone(model))):
                start = time.perf_counter()
                estimator.fit(X_train, y_train)
                times[key].append(time.perf_counter() - start)
        info["time ratio"] = min(times["auto"]) / min(times["plain"])
    scaler, clf = model[0], model[-1]
    codes = np.searchsorted(clf.classes_, y_test)
    sets = {k: scaler.transform(v) for k, v in evaluation_sets(name, X_test).items()}
    latent = {k: softmax_form(*clf.predict_latent(v)) for k, v in sets.items()}
    rows = {
        "default": metrics(name, {k: clf.predict_log_proba(v) for k, v in sets.items()}, codes),
        "probit T=1": metrics(name, {k: probit_log_proba(*v) for k, v in latent.items()},
                              codes),
    }
    rows["no residual"] = metrics(
        name, {k: bare[-1].predict_log_proba(v) for k, v in sets.items()}, codes)
    for other in ("probit", "mc", "bridge", "plugin"):
        rows[other] = metrics(name, {k: clf.predict_log_proba(v, other) for k, v in sets.items()},
                              codes)
    mlp = make_pipeline(StandardScaler(), MLPClassifier(random_state=0, max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp.fit(X_train, y_train)
    rows["MLPClassifier"] = metrics(
        name, {k: np.log(np.clip(mlp.predict_proba(v), 1e-300, None))
               for k, v in evaluation_sets(name, X_test).items()}, codes)
    theirs = laplace_torch_log_proba(clf, scaler.transform(X_train),
                                     np.searchsorted(clf.classes_, y_train), sets)
    if theirs is not None:
        rows["laplace-torch"] = metrics(name, theirs, codes)
    if grid:
        for c in SCALES:
            rows[f"probit T={c:g}"] = metrics(
                name, {k: probit_log_proba(*v, c) for k, v in latent.items()}, codes)
        info["curve"] = clf.temperature_curve_
    return rows, info


def run(name, activation, splits, grid, params=None):
    """Fit and print one data set and activation; return the table's rows and the run's
    chosen temperatures, time ratio and (with ``grid``) criteria."""
    results, infos = [], []
    for split in range(splits):
        rows, info = one_split(name, activation, split, grid, timing=split == 0,
                               params=params)
        results.append(rows)
        infos.append(info)
    print(f"\n## {name}, {activation} ({splits} split{'s' * (splits > 1)}; chosen T "
          + " ".join(f"{i['T']:.2g}" for i in infos) + "; residual scale "
          + " ".join(f"{i['s']:.2g}" for i in infos)
          + f"; fit time with the choice / without {infos[0]['time ratio']:.2f})")
    extra = {"digits": ["noise", "shuffled", "x10"], "moons": ["far"]}.get(name, [])
    print(f"{'method':>15} {'NLL':>7} {'/plugin':>7} {'max':>6} {'ECE':>6} {'acc':>6} "
          + " ".join(f"{k:>8}" for k in extra))
    rows = []
    for method in results[0]:
        if method not in results[-1]:
            continue
        ratio = [r[method]["nll"] / r["plugin"]["nll"] for r in results]
        mean = {k: np.mean([r[method][k] for r in results]) for k in results[0][method]}
        print(f"{method:>15} {mean['nll']:7.4f} {np.mean(ratio):7.3f} {np.max(ratio):6.3f} "
              f"{mean['ece']:6.4f} {mean['acc']:6.4f} "
              + " ".join(f"{mean[k]:8.3f}" for k in extra))
        rows.append({"data set": name, "activation": activation, "method": method,
                     "NLL": mean["nll"], "/plugin": np.mean(ratio), "max": np.max(ratio),
                     "ECE": mean["ece"], "acc": mean["acc"], **{k: mean[k] for k in extra}})
    run_info = {"data set": name, "activation": activation, "splits": splits,
                "chosen T": [i["T"] for i in infos],
                "residual scale": [i["s"] for i in infos], "time ratio": infos[0]["time ratio"]}
    if grid:
        curve = infos[0]["curve"]
        if curve is not None:
            print("criteria of the first split (per training row):")
            for key in ("temperature", "loo_nll", "fit_nll"):
                print(f"{key:>12} " + " ".join(f"{v:8.2g}" for v in curve[key]))
            run_info["criteria"] = {key: curve[key] for key in ("temperature", "loo_nll",
                                                                 "fit_nll")}
    return rows, run_info


def main(argv=None):
    options = parser(__doc__, quick_help="moons with tanh only (seconds)")
    options.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    options.add_argument("--activations", nargs="+", default=["tanh", "relu"])
    options.add_argument("--splits", type=int, default=1)
    options.add_argument("--grid", action="store_true",
                         help="also the probit at fixed temperatures and the criteria")
    options.add_argument("--link", default=None,
                         help="the estimator's link_approximation for the row 'default' "
                              "(default: the estimator's default)")
    options.add_argument("--last-layer", action="store_true",
                         help="the estimator with subset_of_weights='last_layer'")
    args = setup(options.parse_args(argv), argv)
    params = {} if args.link is None else {"link_approximation": args.link}
    if args.last_layer:
        params["subset_of_weights"] = "last_layer"
    if args.quick:
        args.datasets, args.activations = ["moons"], ["tanh"]
    results, runs = [], []
    for name in args.datasets:
        for activation in args.activations:
            rows, info = run(name, activation, args.splits, args.grid, params)
            results += rows
            runs.append(info)
    write_json(args, results, runs=runs)


if __name__ == "__main__":
    main()
