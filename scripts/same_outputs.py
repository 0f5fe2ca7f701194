"""Record every public output of a fixed set of fits and searches, to check a
refactoring bit for bit.

Usage::

    python scripts/same_outputs.py save before.npz      # on the old commit
    python scripts/same_outputs.py save after.npz       # on the new one
    python scripts/same_outputs.py compare before.npz after.npz

22 fits (regressor and classifier; full, K-FAC, diagonal and last-layer
posteriors; 'auto' and fixed hyperparameters; per-layer priors; VI with a full,
diagonal and K-FAC q; sample weights; two targets; a user module) and 4 searches
(``EvidenceSearchCV`` with and without network reuse, ``maximize_evidence``,
``NTKKernel``/``NTKFeatures``); per fit its predictions, uncertainties, evidence
(also at other hyperparameters, with its gradient), evidence trace, warnings,
kernel, features, transformed targets and GP-view evidence. One torch thread;
about two minutes. ``compare`` prints each array that differs in shape, dtype or
any bit (NaN equal to NaN) and exits 1 if any does.
"""

import sys
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, make_friedman1
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import (
    DNN2GPClassifier,
    DNN2GPRegressor,
    EvidenceSearchCV,
    NTKFeatures,
    NTKKernel,
    maximize_evidence,
)


class Record(dict):
    """Named arrays; a list of dicts (a trace) or a dict is stored entry by entry."""

    def put(self, name, value):
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
            for i, entry in enumerate(value):
                for key, x in entry.items():
                    if x is not None:
                        self[f"{name}[{i}].{key}"] = np.asarray(x, dtype=float)
        else:
            self[name] = np.asarray(value)


def _warnings_and_fit(est, X, y, **fit_params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y, **fit_params)
    return sorted(str(w.message)[:60] for w in caught) or [""]


def _evidence_elsewhere(record, name, est, theta):
    try:
        value, grad = est.log_marginal_likelihood(theta=theta, eval_gradient=True)
        record.put(name + ".lml_at", value)
        record.put(name + ".lml_grad", grad)
    except ValueError as exc:  # e.g. per-target noise not in proportion
        record.put(name + ".lml_at", str(exc))


def _views(record, name, est, X, y, X_test):
    record.put(name + ".features", est.features(X_test[:4]))
    record.put(name + ".kernel", est.kernel(X_test[:4], X_test[:3]))
    record.put(name + ".ytilde", est.transformed_targets(X[:10], y[:10]))
    record.put(name + ".gplml", est.gp_log_marginal_likelihood(X[:30], y[:30]))


def regressor(record, name, est, X, y, X_test, **fit_params):
    record.put(name + ".warn", _warnings_and_fit(est, X, y, **fit_params))
    mean, std = est.predict(X_test, return_std=True)
    record.put(name + ".mean", mean)
    record.put(name + ".std", std)
    record.put(name + ".cov", est.predict(X_test[:5], return_cov=True)[1])
    record.put(name + ".unc", est.predict_uncertainty(X_test[:5]))
    for key in ("log_marginal_likelihood_", "prior_precision_", "noise_std_", "n_iter_"):
        record.put(f"{name}.{key}", getattr(est, key))
    if hasattr(est, "evidence_trace_"):
        record.put(name + ".trace", est.evidence_trace_)
    theta = np.log(np.r_[np.atleast_1d(est.prior_precision_), est.noise_std_]) + 0.1
    _evidence_elsewhere(record, name, est, theta)
    _views(record, name, est, X, y, X_test)


def classifier(record, name, est, X, y, X_test, **fit_params):
    record.put(name + ".warn", _warnings_and_fit(est, X, y, **fit_params))
    record.put(name + ".proba", est.predict_proba(X_test))
    for link in ("probit", "bridge", "plugin", "mc"):
        record.put(f"{name}.proba_{link}", est.predict_proba(X_test, link_approximation=link))
    record.put(name + ".decision", est.decision_function(X_test))
    mean, var = est.predict_latent(X_test)
    record.put(name + ".latent_mean", mean)
    record.put(name + ".latent_var", var)
    record.put(name + ".unc", est.predict_uncertainty(X_test))
    record.put(name + ".score_samples", est.score_samples(X_test))
    for key in ("log_marginal_likelihood_", "prior_precision_", "temperature_"):
        record.put(f"{name}.{key}", getattr(est, key))
    if hasattr(est, "evidence_trace_"):
        record.put(name + ".trace", est.evidence_trace_)
    _evidence_elsewhere(record, name, est, np.log(np.atleast_1d(est.prior_precision_)) + 0.1)
    _views(record, name, est, X, y, X_test)


def _small_module(n_in, n_out):
    return torch.nn.Sequential(torch.nn.Linear(n_in, 6), torch.nn.Tanh(),
                               torch.nn.Linear(6, n_out))


def record_outputs():
    torch.set_num_threads(1)
    r = Record()
    Xd, yd = load_diabetes(return_X_y=True)
    Xd, yd = StandardScaler().fit_transform(Xd)[:200], yd[:200]
    Xi, yi = load_iris(return_X_y=True)
    Xi = StandardScaler().fit_transform(Xi)
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xb, yb = StandardScaler().fit_transform(Xb)[:200], yb[:200]
    Xf, yf = make_friedman1(150, noise=1, random_state=0)
    Xt, Xit, Xbt = Xd[:20], Xi[::7], Xb[:20]
    R, C = DNN2GPRegressor, DNN2GPClassifier

    regressor(r, "r_default", R(random_state=0), Xd, yd, Xt)
    regressor(r, "r_layer", R(random_state=0, prior_structure="layerwise",
                              hidden_layer_sizes=(10, 10)), Xd, yd, Xt)
    regressor(r, "r_fixed_kron", R(random_state=0, prior_precision=3.0, noise_std=40.0,
                                   posterior="kron"), Xd, yd, Xt)
    regressor(r, "r_diag_delta_auto", R(random_state=0, noise_std=0.5, posterior="diag"),
              Xf, yf, Xf[:20])
    regressor(r, "r_noise_auto", R(random_state=0, prior_precision=2.0), Xf, yf, Xf[:20])
    regressor(r, "r_array_prior", R(random_state=0, prior_precision=[1.0, 5.0]), Xd, yd, Xt)
    regressor(r, "r_vi", R(random_state=0, inference="vi", max_iter=50), Xd, yd, Xt)
    regressor(r, "r_vi_full", R(random_state=0, inference="vi", posterior="full",
                                prior_precision=1.0, noise_std=0.5, max_iter=30),
              Xf, yf, Xf[:20])
    regressor(r, "r_weights", R(random_state=0, hidden_layer_sizes=(8,)), Xd, yd, Xt,
              sample_weight=np.linspace(0.5, 2, len(yd)))
    regressor(r, "r_last_layer", R(random_state=0, subset_of_weights="last_layer"),
              Xd, yd, Xt)
    regressor(r, "r_adam", R(random_state=0, solver="adam", max_iter=40, prior_precision=1.0),
              Xd, yd, Xt)
    regressor(r, "r_two_targets", R(random_state=0, hidden_layer_sizes=(12,)),
              Xd, np.c_[yd, yd**0.5], Xt)
    classifier(r, "c_iris", C(random_state=0), Xi, yi, Xit)
    classifier(r, "c_binary_kron", C(random_state=0, posterior="kron"), Xb, yb, Xbt)
    classifier(r, "c_binary_diag", C(random_state=0, posterior="diag", prior_precision=2.0),
               Xb, yb, Xbt)
    classifier(r, "c_layer", C(random_state=0, prior_structure="layerwise",
                               hidden_layer_sizes=(8, 8)), Xi, yi, Xit)
    classifier(r, "c_vi", C(random_state=0, inference="vi", max_iter=40), Xi, yi, Xit)
    classifier(r, "c_vi_kron", C(random_state=0, inference="vi", posterior="kron",
                                 max_iter=40, prior_precision=1.0), Xi, yi, Xit)
    classifier(r, "c_last_layer", C(random_state=0, subset_of_weights="last_layer"),
               Xb, yb, Xbt)
    classifier(r, "c_probit_T1", C(random_state=0, temperature=1.0,
                                   link_approximation="probit"), Xi, yi, Xit)
    classifier(r, "c_module", C(random_state=0, module=_small_module), Xi, yi, Xit)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short trainings at a wrong noise: expected
        s = EvidenceSearchCV(R(random_state=0, hidden_layer_sizes=(10,)),
                             {"prior_precision": [0.1, 1.0, 10.0], "noise_std": [0.3, 0.6]}
                             ).fit(Xd, yd)
    r.put("search_regressor.best_index", s.best_index_)
    r.put("search_regressor.scores", s.cv_results_["mean_test_score"])
    r.put("search_regressor.predict", s.predict(Xt))
    s = EvidenceSearchCV(C(random_state=0, hidden_layer_sizes=(10,)),
                         {"prior_precision": [0.1, 1.0, 10.0]}, reuse_network=True).fit(Xi, yi)
    r.put("search_classifier.best_index", s.best_index_)
    r.put("search_classifier.scores", s.cv_results_["mean_test_score"])
    r.put("search_classifier.proba", s.predict_proba(Xit))
    best, path = maximize_evidence(R(random_state=0, hidden_layer_sizes=(10,)), Xd, yd,
                                   return_path=True)
    r.put("maximize.lml", best.log_marginal_likelihood_)
    r.put("maximize.predict", best.predict(Xt))
    r.put("maximize.path", path)
    kernel = NTKKernel(R(random_state=0, hidden_layer_sizes=(6,), prior_precision=1.0,
                         noise_std=0.5).fit(Xd, yd))
    r.put("ntk_kernel.K", kernel(Xt[:5], Xt[:4]))
    r.put("ntk_kernel.diag", kernel.diag(Xt[:5]))
    features = NTKFeatures(C(random_state=0, hidden_layer_sizes=(6,), prior_precision=1.0))
    r.put("ntk_features.transform", features.fit(Xi, yi).transform(Xit))
    return r


def compare(path_a, path_b):
    a, b = np.load(path_a), np.load(path_b)
    differ = 0
    for key in sorted(set(a.files) | set(b.files)):
        if key not in a.files or key not in b.files:
            print(f"only in {path_a if key in a.files else path_b}: {key}")
            differ += 1
            continue
        x, y = a[key], b[key]
        same = x.shape == y.shape and x.dtype == y.dtype and np.array_equal(
            x, y, equal_nan=x.dtype.kind == "f")
        if not same:
            scale = np.max(np.abs(x)) if x.dtype.kind == "f" and x.size else None
            gap = (f", largest difference {np.max(np.abs(x - y)) / scale:.2g} of the scale"
                   if scale and x.shape == y.shape else "")
            print(f"differs: {key}{gap}")
            differ += 1
    print(f"{len(a.files)} arrays, {differ} differ")
    return differ


def main(argv):
    if len(argv) == 2 and argv[0] == "save":
        record = record_outputs()
        np.savez(argv[1], **record)
        print(f"{len(record)} arrays saved to {argv[1]}")
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return int(compare(argv[1], argv[2]) > 0)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
