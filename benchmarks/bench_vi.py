"""Default VI against the exact Laplace posterior at the same hyperparameters.

Every estimator below is built with its defaults except for the problem's
network, prior precision and noise (and ``inference='vi'``). Per seed, and in
total, the script prints:

* Snelson "in-between" (148 points without 1.5 <= x <= 3; 1-32-1 sigmoid,
  ``noise_std=0.286``, ``normalize_y=False``) at ``prior_precision`` 1 and
  0.1: the training RMSE of each fit and VI's ratio to the Laplace MAP's
  (target at 0.1: <= 1.15), and the mean predictive std over the gap
  [1.75, 2.75] divided by its mean at the training inputs (target at 0.1:
  >= 1.5). Default VI has a full ``q`` here (``posterior='auto'``, P = 97);
  the same VI with ``posterior='diag'`` is shown too. For each VI fit the
  negative ELBO of its ``q`` is compared with that of the same fit run ten
  times as many epochs (a run that its stopping rule does not end early): a
  default that reached VI's optimum is within a few standard errors of it.
  The ELBO's data term is estimated from 2,000 antithetic draws of ``q``
  with the network linearised at the mean as a control variate (its
  expectation is exact), which cuts the Monte-Carlo error several-fold.
* Red wine, the paper's splits 0-4 (11-20-20-1 tanh, ``prior_precision=30``,
  ``noise_std=0.64``): test MSE in quality units of the MAP and of VI, and
  their difference against its paired standard error over the 160 test points
  (target: within one paired SE on each split); also VI at ``temperature=0.3``
  (the KL term weighted by 0.3), for reference.
* Digits (64-50-10 tanh, standardised, 70/30 split): test accuracy (target
  >= 0.97) and test NLL of VI's ``predict_proba`` against the MAP's plug-in
  softmax (target: at most 1.1x); VI's NLL with the plug-in softmax at its
  mean is shown too. Wine and digits get a diagonal ``q`` by default. For
  reference (no target), the prior precision each 'auto' search chose, VI
  refitted at the Laplace fit's choice (the same hyperparameters), and VI with
  a K-FAC ``q`` (``posterior='kron'``, whose evidence is then K-FAC's too).
* The wall time of each ``fit`` (training and posterior) and VI's ratio to
  Laplace's on wine and digits (target <= 2), measured one after the other
  in this process on one torch thread.

Run ``python benchmarks/bench_vi.py --help`` for options; the common flags
(``benchmarks/README.rst``): ``--quick`` (seed 0, wine split 0, no 10x runs),
``--threads N`` (default 1), ``--json PATH``.
"""

import copy
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch.nn.utils import vector_to_parameters

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._curvature import output_and_jacobian
from sklearn_dnn2gp._vi import kl_divergence
from sklearn_dnn2gp.datasets import load_snelson, load_wine_split

from _harness import parser, setup, write_json

GAP = np.linspace(1.75, 2.75, 9)[:, None]
SNELSON_NOISE = 0.286


def timed_fit(estimator, X, y):
    start = time.perf_counter()
    with warnings.catch_warnings():
        # A fit that runs out of epochs is reported by its numbers below.
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    return time.perf_counter() - start


def negative_elbo(estimator, X, y, n_draws=2000, seed=0):
    """``E_q[-log p(y | w)] + KL(q || p)`` of a fitted one-output VI regressor
    with ``normalize_y=False`` and noise ``SNELSON_NOISE``, and the standard
    error of its Monte-Carlo part.

    The data term is the exact expectation for the network linearised at
    ``q``'s mean plus the mean, over antithetic pairs of draws, of what the
    network's own loss adds to the linearised one.
    """
    q = estimator.posterior_
    module = copy.deepcopy(estimator.module_)
    X_t, y_t = torch.as_tensor(X), torch.as_tensor(y)
    f0, J = output_and_jacobian(module, X_t)
    f0, J = f0[:, 0], J[:, 0]
    half = q.sample(n_draws // 2, torch.Generator().manual_seed(seed)) - q.mean
    steps = torch.cat([half, -half])
    with torch.no_grad():
        outputs = []
        for step in steps:
            vector_to_parameters(q.mean + step, module.parameters())
            outputs.append(module(X_t)[:, 0])
        network = 0.5 * ((torch.stack(outputs) - y_t) ** 2).sum(1)
        linear = 0.5 * ((f0 + steps @ J.T - y_t) ** 2).sum(1)
    excess = ((network - linear) / SNELSON_NOISE**2).reshape(2, -1).mean(0).numpy()
    linearised = 0.5 * float(((f0 - y_t) ** 2).sum() + (J @ q.covariance() * J).sum())
    data = (linearised / SNELSON_NOISE**2 + excess.mean()
            + len(y) * np.log(SNELSON_NOISE * np.sqrt(2 * np.pi)))
    return data + kl_divergence(q), excess.std(ddof=1) / np.sqrt(len(excess))


def snelson(data_dir, seed, prior_precision, longer=True):
    X, y = load_snelson(data_dir)
    base = dict(hidden_layer_sizes=(32,), activation="sigmoid",
                prior_precision=prior_precision, noise_std=SNELSON_NOISE, normalize_y=False,
                random_state=seed)
    fits = {"Laplace": DNN2GPRegressor(**base),
            "VI": DNN2GPRegressor(inference="vi", **base),
            "VI diag": DNN2GPRegressor(inference="vi", posterior="diag", **base)}
    rows = {}
    for name, est in fits.items():
        seconds = timed_fit(est, X, y)
        rmse = float(np.sqrt(np.mean((est.predict(X) - y) ** 2)))
        _, std_data = est.predict(X, return_std=True)
        _, std_gap = est.predict(GAP, return_std=True)
        rows[name] = dict(seconds=seconds, rmse=rmse, gap=std_gap.mean() / std_data.mean(),
                          epochs=est.n_iter_, q=est._structure())
        if name == "Laplace":
            continue
        rows[name]["rmse_ratio"] = rmse / rows["Laplace"]["rmse"]
        rows[name]["elbo"], rows[name]["elbo_se"] = negative_elbo(est, X, y)
        if longer:
            # The same fit for ten times the epochs, which its stopping rule cannot end.
            epochs = 10 * est.n_iter_
            long = clone(est).set_params(max_iter=epochs, n_iter_no_change=epochs)
            timed_fit(long, X, y)
            rows[name]["elbo_10x"], rows[name]["elbo_10x_se"] = negative_elbo(long, X, y)
    return rows


# The temperature of the tempered VI row on red wine (a KL weight; see the regressor's
# ``temperature``).
WINE_TEMPERATURE = 0.3


def wine(data_dir, split):
    X_train, y_train, X_test, y_test, y_std = load_wine_split(split, data_dir)
    base = dict(hidden_layer_sizes=(20, 20), prior_precision=30.0, noise_std=0.64,
                random_state=0)
    rows = {}
    for name, est in {"Laplace": DNN2GPRegressor(**base),
                      "VI": DNN2GPRegressor(inference="vi", **base),
                      "VI tempered": DNN2GPRegressor(inference="vi", temperature=WINE_TEMPERATURE,
                                                     **base)}.items():
        seconds = timed_fit(est, X_train, y_train)
        errors = y_std**2 * (est.predict(X_test) - y_test) ** 2
        rows[name] = dict(seconds=seconds, mse=errors.mean(), errors=errors,
                          epochs=est.n_iter_, q=est._structure())
    for name in ("VI", "VI tempered"):
        difference = rows[name]["errors"] - rows["Laplace"]["errors"]
        rows[name]["paired_se"] = difference.std(ddof=1) / np.sqrt(len(difference))
    for row in rows.values():
        del row["errors"]
    return rows


def digits(seed):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    base = dict(hidden_layer_sizes=(50,), random_state=seed)
    rows = {}
    makers = {
        "Laplace": lambda: DNN2GPClassifier(**base),
        "VI": lambda: DNN2GPClassifier(inference="vi", **base),
        # Reference, not a target: VI at the prior precision the Laplace fit chose,
        # which tells the choice of delta apart from VI's own fit at it.
        "VI at Laplace's delta": lambda: DNN2GPClassifier(
            inference="vi", prior_precision=rows["Laplace"]["delta"], **base),
        "VI kron": lambda: DNN2GPClassifier(inference="vi", posterior="kron", **base),
    }
    for name, make in makers.items():
        est = make()
        seconds = timed_fit(est, X_train, y_train)
        proba = est.predict_proba(X_test)
        with torch.no_grad():
            logits = est.module_(torch.as_tensor(X_test))
        plugin = torch.softmax(logits, dim=1).numpy()
        rows[name] = dict(seconds=seconds, accuracy=float((proba.argmax(1) == y_test).mean()),
                          nll=log_loss(y_test, proba, labels=est.classes_),
                          plugin_nll=log_loss(y_test, plugin, labels=est.classes_),
                          epochs=est.n_iter_, q=est._structure(), delta=est.prior_precision_,
                          temperature=est.temperature_)
    return rows


def verdict(ok):
    return "yes" if ok else "NO"


def print_timed_pair(problem, rows, ratios, laplace_text, vi_text):
    """Print the Laplace and the VI line of a problem with their times, and keep
    VI's time ratio."""
    lap, vi = rows["Laplace"], rows["VI"]
    ratio = vi["seconds"] / lap["seconds"]
    ratios.append(ratio)
    print(f"{problem:<8} Laplace  {laplace_text}  {lap['seconds']:5.2f} s")
    print(f"{problem:<8} VI       {vi_text}  {vi['seconds']:5.2f} s, {vi['epochs']} epochs; "
          f"time ratio {ratio:.2f} ({verdict(ratio <= 2)})")


def print_snelson(prior_precision, rows):
    lap = rows["Laplace"]
    tag = f"snelson d={prior_precision:g}"
    print(f"{tag}  Laplace  RMSE {lap['rmse']:.4f}  gap/data std {lap['gap']:.3f}  "
          f"{lap['seconds']:5.2f} s, {lap['epochs']} iterations")
    targeted = prior_precision == 0.1
    for name in ("VI", "VI diag"):
        r = rows[name]
        rmse_ok = f" ({verdict(r['rmse_ratio'] <= 1.15)})" if targeted else ""
        gap_ok = f" ({verdict(r['gap'] >= 1.5)})" if targeted else ""
        elbo = f"-ELBO {r['elbo']:.1f} +- {r['elbo_se']:.1f}"
        if "elbo_10x" in r:
            elbo += f", 10x epochs {r['elbo_10x']:.1f} +- {r['elbo_10x_se']:.1f}"
        print(f"{tag}  {name:<7}  {r['q']} q  RMSE {r['rmse']:.4f} "
              f"({r['rmse_ratio']:.3f}x MAP{rmse_ok})  gap/data std {r['gap']:.3f}{gap_ok}  "
              f"{elbo}  {r['seconds']:5.2f} s, {r['epochs']} epochs")


def main(argv=None):
    options = parser(__doc__, quick_help="seed 0, wine split 0, no 10x runs")
    options.add_argument("--data-dir", type=Path, default=None,
                         help="folder of the reference data (default: "
                              "sklearn_dnn2gp.datasets.default_data_dir())")
    options.add_argument("--seeds", type=int, nargs="+", default=None,
                         help="random_state of the Snelson and digits fits (default 0 1 2, "
                              "--quick 0)")
    options.add_argument("--splits", type=int, nargs="+", default=None,
                         help="red-wine splits (default 0 1 2 3 4, --quick 0)")
    options.add_argument("--problems", nargs="+", default=["snelson", "wine", "digits"],
                         choices=["snelson", "wine", "digits"])
    # A benchmark script may fix its own process's threads; the library never does.
    args = setup(options.parse_args(argv), argv)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    args.splits = args.splits or ([0] if args.quick else [0, 1, 2, 3, 4])
    # The first fit of a process pays torch's lazy imports; keep them out of the timings.
    timed_fit(DNN2GPRegressor(hidden_layer_sizes=(2,), max_iter=2), np.zeros((4, 1)),
              np.zeros(4))
    timed_fit(DNN2GPRegressor(hidden_layer_sizes=(2,), inference="vi", max_iter=2),
              np.zeros((4, 1)), np.zeros(4))
    ratios = {"wine": [], "digits": []}
    results = []

    def keep(problem, seed, rows, **extra):
        """Note a problem's fits for the JSON record and hand them on."""
        results.extend({"random_state": seed, "problem": problem, **extra, "fit": name, **r}
                       for name, r in rows.items())
        return rows

    if "wine" in args.problems:
        for split in args.splits:
            rows = keep("wine", 0, wine(args.data_dir, split), split=split)
            lap, vi = rows["Laplace"], rows["VI"]
            gap = vi["mse"] - lap["mse"]
            print_timed_pair(
                f"wine {split}", rows, ratios["wine"], f"test MSE {lap['mse']:.4f}",
                f"test MSE {vi['mse']:.4f}, VI - MAP {gap:+.4f} +- {vi['paired_se']:.4f} "
                f"paired SE ({verdict(gap <= vi['paired_se'])}); {vi['q']} q")
            cold = rows["VI tempered"]
            gap = cold["mse"] - lap["mse"]
            print(f"wine {split} VI at T = {WINE_TEMPERATURE}: test MSE {cold['mse']:.4f}, "
                  f"VI - MAP {gap:+.4f} +- {cold['paired_se']:.4f} paired SE "
                  f"({verdict(gap <= cold['paired_se'])}); {cold['seconds']:5.2f} s, "
                  f"{cold['epochs']} epochs; time ratio {cold['seconds'] / lap['seconds']:.2f}")
    for seed in args.seeds:
        print(f"--- random_state={seed}")
        if "snelson" in args.problems:
            for prior_precision in (1.0, 0.1):
                rows = snelson(args.data_dir, seed, prior_precision, longer=not args.quick)
                print_snelson(prior_precision, keep("snelson", seed, rows,
                                                    prior_precision=prior_precision))
        if "digits" in args.problems:
            rows = keep("digits", seed, digits(seed))
            lap, vi = rows["Laplace"], rows["VI"]
            print_timed_pair(
                "digits", rows, ratios["digits"],
                f"accuracy {lap['accuracy']:.4f}  NLL {lap['nll']:.4f}  "
                f"plug-in NLL {lap['plugin_nll']:.4f}",
                f"accuracy {vi['accuracy']:.4f} ({verdict(vi['accuracy'] >= 0.97)})  "
                f"NLL {vi['nll']:.4f} ({vi['nll'] / lap['plugin_nll']:.3f}x the MAP plug-in: "
                f"{verdict(vi['nll'] <= 1.1 * lap['plugin_nll'])}), plug-in at the mean "
                f"{vi['plugin_nll']:.4f}; {vi['q']} q at T = {vi['temperature']:.2g}")
            ref = rows["VI at Laplace's delta"]
            print(f"digits   prior precision: Laplace {lap['delta']:.3g}, VI {vi['delta']:.3g}; "
                  f"VI at Laplace's: accuracy {ref['accuracy']:.4f}  NLL {ref['nll']:.4f}  "
                  f"plug-in at the mean {ref['plugin_nll']:.4f}  {ref['seconds']:5.2f} s")
            kron = rows["VI kron"]
            ratio = kron["seconds"] / lap["seconds"]
            print(f"digits   VI kron  accuracy {kron['accuracy']:.4f} "
                  f"({verdict(kron['accuracy'] >= 0.97)})  NLL {kron['nll']:.4f} "
                  f"({kron['nll'] / lap['plugin_nll']:.3f}x the MAP plug-in), "
                  f"plug-in at the mean {kron['plugin_nll']:.4f}; delta {kron['delta']:.3g}  "
                  f"{kron['seconds']:5.2f} s, {kron['epochs']} epochs; time ratio {ratio:.2f} "
                  f"({verdict(ratio <= 2)})")
    for name, values in ratios.items():
        if values:
            print(f"VI / Laplace wall time on {name}: median {np.median(values):.2f}, "
                  f"max {np.max(values):.2f} over {len(values)} runs")
    write_json(args, results, time_ratios=ratios)


if __name__ == "__main__":
    main()
