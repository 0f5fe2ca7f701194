"""One prior precision against one per layer, both set by the retrained evidence.

Issue 11 asks for per-layer prior precisions set by the evidence, and names
them as a possible cure for the underconfidence of the GP-based class
probabilities. Per data set (those of ``bench_defaults.py``, the same 70/30
splits, X standardised in a pipeline, y raw) this script fits
``prior_structure='scalar'`` (the default) and ``'layerwise'``, both with
``'auto'`` hyperparameters and ``random_state=0``, and prints

* the chosen precisions and the training-set log evidence (in y's units);
* test RMSE or error rate, and the test NLL (regression: the Gaussian
  predictive; classification: the default ``predict_proba``);
* for classifiers, NLL and expected calibration error (ECE, 10 bins of the
  top probability) of the plug-in softmax and of the probit and Monte-Carlo
  links, which use the GP's latent variance;
* the fit time and its ratio layerwise / scalar (same process, one thread).

Run ``python benchmarks/bench_layerwise.py [--datasets diabetes iris ...]``, with
the common flags (``benchmarks/README.rst``): ``--quick`` (diabetes and iris, as
``bench_defaults.py --quick``), ``--threads N`` (default 1), ``--json PATH``.
"""

import time

import numpy as np
from bench_defaults import CLASSIFICATION, QUICK, REGRESSION, load
from bench_last_layer_calibration import ece
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor

from _harness import parser, setup, write_json


def run(name, structure):
    X_train, X_test, y_train, y_test = load(name)
    task = "classification" if name in CLASSIFICATION else "regression"
    Estimator = DNN2GPClassifier if task == "classification" else DNN2GPRegressor
    model = make_pipeline(StandardScaler(),
                          Estimator(prior_structure=structure, random_state=0))
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    est = model[-1]
    row = {"seconds": seconds, "delta": np.atleast_1d(est.prior_precision_),
           "evidence": est.log_marginal_likelihood_, "trials": len(est.evidence_trace_)}
    if task == "regression":
        mean, std = model.predict(X_test, return_std=True)
        row["error"] = float(np.sqrt(np.mean((mean - y_test) ** 2)))
        row["nll"] = float(np.mean(0.5 * np.log(2 * np.pi * std**2)
                                   + 0.5 * ((y_test - mean) / std) ** 2))
        row["sigma"] = float(est.noise_std_[0])
        return row
    Xt = model[0].transform(X_test)
    proba = est.predict_proba(Xt)
    row["error"] = float(np.mean(est.classes_[proba.argmax(1)] != y_test))
    row["nll"] = log_loss(y_test, proba, labels=est.classes_)
    for link in ("plugin", "probit", "mc"):
        p = est.predict_proba(Xt, link_approximation=link)
        row[link] = (log_loss(y_test, p, labels=est.classes_),
                     ece(p, np.searchsorted(est.classes_, y_test)))
    return row


def main(argv=None):
    options = parser(__doc__, quick_help="diabetes and iris only")
    options.add_argument("--datasets", nargs="+", choices=REGRESSION + CLASSIFICATION,
                         help="data sets to run (default: all, or those of --quick)")
    args = setup(options.parse_args(argv), argv)
    datasets = args.datasets or (QUICK if args.quick else REGRESSION + CLASSIFICATION)
    results = []
    print("| data set | prior | delta | log evidence | error | NLL | plug-in NLL / ECE "
          "| probit NLL / ECE | MC NLL / ECE | fit s | time ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in datasets:
        rows = {s: run(name, s) for s in ("scalar", "layerwise")}
        for structure, r in rows.items():
            links = [f"{r[k][0]:.3f} / {r[k][1]:.3f}" if k in r else "" for k in
                     ("plugin", "probit", "mc")]
            ratio = r["seconds"] / rows["scalar"]["seconds"]
            print(f"| {name} | {structure} | {np.array2string(r['delta'], precision=3)} "
                  f"| {r['evidence']:.2f} | {r['error']:.4g} | {r['nll']:.3f} | "
                  + " | ".join(links) + f" | {r['seconds']:.1f} | {ratio:.1f} |", flush=True)
            row = {"data set": name, "prior": structure, "delta": r["delta"],
                   "log evidence": r["evidence"], "error": r["error"], "NLL": r["nll"]}
            for key, label in (("plugin", "plug-in"), ("probit", "probit"), ("mc", "MC")):
                if key in r:
                    row[f"{label} NLL"], row[f"{label} ECE"] = r[key]
            results.append({**row, "fit s": r["seconds"], "time ratio": ratio})
    write_json(args, results)


if __name__ == "__main__":
    main()
