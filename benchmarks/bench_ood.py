"""Class probabilities in and out of distribution: the links, the plug-in, MLPClassifier,
and the covariance scale ``c`` a default would have to choose (issue 19).

For each data set and activation, ``make_pipeline(StandardScaler(),
DNN2GPClassifier(random_state=0, activation=...))`` is fitted once on a 70/30
stratified split, and from that one network the script prints, for the test set:

* each link of the estimator (``bridge``, the default; ``probit``; ``mc``;
  ``plugin``) and scikit-learn's ``MLPClassifier`` (same split, default
  settings): test NLL, its ratio to the plug-in's, ECE (10 bins), accuracy;
* the probit link with the latent covariance scaled by ``c`` (``c = 0`` is the
  plug-in, ``c = 1`` the evidence's posterior as it is), for a grid of ``c``;
* two criteria a ``fit`` could compute without held-out data, both from the
  training points' latent means ``f_i`` and covariances ``V_i`` (the GP view's
  approximate leave-one-out: removing point ``i`` from a Laplace posterior
  gives the cavity ``V_-i = V_i (I - Lambda_i V_i)^-1`` and the Newton step
  ``f_-i = f_i + V_-i (p_i - y_i)``):

  - ``loo``: the cavity of the untempered posterior, predicted with ``c V_-i``.
    This is the leave-one-out of the posterior tempered at ``T = c``
    (likelihood and prior both raised to ``1/T``): its precision and point
    ``i``'s term are both divided by ``T``, so the cavity's covariance is
    ``T V_-i`` while the Newton step, ``(H_-i / T)^-1 (g_i / T)``, is the
    untempered one;
  - ``loo_t``: the cavity of ``c V_i`` (the covariance scaled while point
    ``i``'s likelihood term is not), for comparison: at ``c -> 0`` it is the
    training NLL, so it favours small ``c``;

  each printed as the probit NLL over the training points, and the ``c`` a
  rule "largest ``c`` whose criterion is within 1 % of its minimum" picks.

Out of distribution (digits): the AUROC of the maximum probability, test digits
against uniform-noise images (pixels uniform in [0, 16]), pixel-shuffled test
digits and test digits times 10. Far away (moons): the mean maximum probability at
``X_test * 10``.

laplace-torch's recommended configuration (last layer, K-FAC, probit, prior
precision by its marginal likelihood) is not in this version of the table.

Run: ``python benchmarks/bench_ood.py [--datasets digits moons ...] [--activations tanh relu]``
(one torch thread; the default runs every data set with both activations, a few
minutes on 2 cores; ``--quick``: moons with tanh, seconds).
"""

import argparse
import time
import warnings

import numpy as np
import torch
from bench_last_layer_calibration import ece
from scipy.special import log_softmax
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_moons
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier
from sklearn_dnn2gp._loo import leave_one_out_latents

SCALES = np.array([0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0])
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


def cavity(clf, f, var, codes, temperature=1.0):
    """The approximate leave-one-out latents of the training points (see above), of the
    posterior whose latent covariances are ``temperature * var``, in softmax form."""
    likelihood = clf.likelihood_
    f_t = torch.as_tensor(f)
    y_t = torch.as_tensor(codes, dtype=torch.float64 if likelihood.binary else torch.long)
    f_loo, var_loo = leave_one_out_latents(
        f_t, temperature * torch.as_tensor(var), likelihood.residual(f_t, y_t),
        likelihood.precision(f_t))
    return softmax_form(f_loo.numpy(), var_loo.numpy())


def nll(log_proba, codes):
    return -log_proba[np.arange(len(codes)), codes].mean()


def pick(curve):
    """The largest scale whose criterion is within 1 % of the criterion's minimum."""
    return SCALES[curve <= curve.min() * 1.01 + 1e-12].max()


def ood_sets(X_test, rng):
    return {"noise": rng.uniform(0, 16, size=X_test.shape),
            "shuffled": np.array([row[rng.permutation(X_test.shape[1])] for row in X_test]),
            "x10": X_test * 10}


def run(name, activation):
    X, y = DATASETS[name]()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    start = time.perf_counter()
    model = make_pipeline(StandardScaler(), DNN2GPClassifier(random_state=0,
                                                             activation=activation))
    model.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    scaler, clf = model[0], model[-1]
    codes_test = np.searchsorted(clf.classes_, y_test)
    codes_train = np.searchsorted(clf.classes_, y_train)
    latent = {"test": softmax_form(*clf.predict_latent(scaler.transform(X_test)))}
    if name == "digits":
        for key, X_out in ood_sets(X_test, np.random.RandomState(0)).items():
            latent[key] = softmax_form(*clf.predict_latent(scaler.transform(X_out)))
    if name == "moons":
        latent["far"] = softmax_form(*clf.predict_latent(scaler.transform(X_test * 10)))

    def out_of_distribution(max_proba):
        if name == "digits":
            inside = max_proba["test"]
            aucs = [roc_auc_score(np.r_[np.ones(len(inside)), np.zeros(len(max_proba[k]))],
                                  np.r_[inside, max_proba[k]])
                    for k in ("noise", "shuffled", "x10")]
            return "AUROC " + " / ".join(f"{a:.3f}" for a in aucs)
        if name == "moons":
            return f"far max-p {max_proba['far'].mean():.3f}"
        return ""

    plugin_nll = nll(log_softmax(latent["test"][0], axis=1), codes_test)
    print(f"\n## {name}, {activation} (fit {fit_time:.1f} s)")
    print(f"{'method':>18} {'NLL':>7} {'/plugin':>7} {'ECE':>6} {'acc':>6}  out of distribution")

    def report(label, log_proba, max_proba):
        proba = np.exp(log_proba)
        print(f"{label:>18} {nll(log_proba, codes_test):7.4f} "
              f"{nll(log_proba, codes_test) / plugin_nll:7.3f} {ece(proba, codes_test):6.4f} "
              f"{(proba.argmax(1) == codes_test).mean():6.4f}  {out_of_distribution(max_proba)}")

    for link in ("bridge", "probit", "mc", "plugin"):
        sets = {"test": X_test}
        if name == "digits":
            sets.update(ood_sets(X_test, np.random.RandomState(0)))
        if name == "moons":
            sets["far"] = X_test * 10
        max_proba = {k: clf.predict_proba(scaler.transform(v), link).max(1)
                     for k, v in sets.items()}
        report(link + (" (default)" if link == clf.link_approximation else ""),
               clf.predict_log_proba(scaler.transform(X_test), link), max_proba)
    mlp = make_pipeline(StandardScaler(), MLPClassifier(random_state=0, max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp.fit(X_train, y_train)
    mlp_sets = {"test": X_test}
    if name == "digits":
        mlp_sets.update(ood_sets(X_test, np.random.RandomState(0)))
    if name == "moons":
        mlp_sets["far"] = X_test * 10
    report("MLPClassifier", np.log(np.clip(mlp.predict_proba(X_test), 1e-300, None)),
           {k: mlp.predict_proba(v).max(1) for k, v in mlp_sets.items()})

    f_train, v_train = clf.predict_latent(scaler.transform(X_train))
    f_loo, v_loo = cavity(clf, f_train, v_train, codes_train)
    loo = np.array([nll(probit_log_proba(f_loo, v_loo, c), codes_train) for c in SCALES])
    loo_t = np.array([nll(probit_log_proba(*cavity(clf, f_train, v_train, codes_train, c)),
                          codes_train) for c in SCALES])
    picks = {"loo": pick(loo), "loo_t": pick(loo_t)}
    for c in SCALES:
        label = f"probit c={c:g}" + "".join(f" <{k}" for k, v in picks.items() if v == c)
        report(label, probit_log_proba(*latent["test"], c),
               {k: np.exp(probit_log_proba(*v, c)).max(1) for k, v in latent.items()})
    print(f"{'criterion':>18} " + " ".join(f"{c:>7.0e}" for c in SCALES))
    print(f"{'loo':>18} " + " ".join(f"{v:7.4f}" for v in loo))
    print(f"{'loo_t':>18} " + " ".join(f"{v:7.4f}" for v in loo_t))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--activations", nargs="+", default=["tanh", "relu"])
    parser.add_argument("--quick", action="store_true", help="moons with tanh only (seconds)")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.activations = ["moons"], ["tanh"]
    torch.set_num_threads(1)
    for name in args.datasets:
        for activation in args.activations:
            run(name, activation)


if __name__ == "__main__":
    main()
