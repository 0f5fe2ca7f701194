"""
In-between uncertainty on the Snelson data (Fig. 3)
===================================================

Fig. 3 of Khan et al. (2019): the Snelson 1-D data without the points with
``1.5 <= x <= 3`` (148 left), fitted by a 1-32-1 sigmoid network with noise std
``sigma = 0.286``, four ways:

* DNN2GP-Laplace: L-BFGS to the MAP at prior precision ``delta = 0.1``, then
  the full Laplace-GGN posterior, whose predictive is that of the GP with the
  network's kernel;
* DNN2GP-VI: VOGN with a full covariance, also at ``delta = 0.1``, for a fixed
  number of epochs;
* MC diagonal Laplace: the same network with a diagonal GGN posterior, its
  predictive sampled by running the *nonlinear* network at weight draws (the
  paper's "DNN-Laplace");
* scikit-learn's ``GaussianProcessRegressor(ConstantKernel() * RBF())``.

It needs the reference data (``sklearn_dnn2gp.datasets.load_snelson``: the
shared data folder beside the checkout or ``$SKLEARN_DNN2GP_DATA``); where they
are missing the documentation shows this page without running it. By default
it runs short (300 L-BFGS iterations, 30 VI epochs, 100 draws; seconds);
``DNN2GP_EXAMPLES_FULL=1`` runs the paper's setting (5,000 iterations, 1,500
epochs, 1,000 draws; about a minute on two CPU cores).
"""

# %%
# Four fits
# ---------

import copy
import os
import time
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel
from torch.nn.utils import vector_to_parameters

from sklearn_dnn2gp import DNN2GPRegressor, PredictiveDisplay
from sklearn_dnn2gp.datasets import load_snelson

SIGMA = 0.286
GAP = (1.5, 3.0)
full = os.environ.get("DNN2GP_EXAMPLES_FULL") == "1"


def fit(estimator, X, y):
    """Fit, reporting rather than warning when L-BFGS stops at ``max_iter``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(X, y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        print(f"  (training stopped at max_iter={estimator.max_iter} before tol)")
    return estimator


def sampled_predictive(estimator, x, n_samples, seed=0):
    """Mean and latent std of the network's outputs at ``n_samples`` weight draws."""
    draws = estimator.posterior_.sample(n_samples, torch.Generator().manual_seed(seed))
    module = copy.deepcopy(estimator.module_)
    inputs = torch.as_tensor(x, dtype=torch.float64)
    outputs = []
    with torch.no_grad():
        for weights in draws:
            vector_to_parameters(weights, module.parameters())
            outputs.append(module(inputs)[:, 0].numpy())
    outputs = np.array(outputs)
    return outputs.mean(0), outputs.std(0)


start = time.perf_counter()
X, y = load_snelson()
max_iter = 5000 if full else 300
network = dict(hidden_layer_sizes=(32,), activation="sigmoid", noise_std=SIGMA,
               random_state=0)
print(f"Snelson data without {GAP[0]} <= x <= {GAP[1]}: {len(y)} points; 1-32-1 sigmoid, "
      f"sigma = {SIGMA}")
print("DNN2GP-Laplace (delta = 0.1)")
laplace = fit(DNN2GPRegressor(prior_precision=0.1, max_iter=max_iter, **network), X, y)
print("MC diagonal Laplace (the same training, diagonal GGN)")
diagonal = fit(clone(laplace).set_params(posterior="diag"), X, y)
print("DNN2GP-VI (VOGN, full covariance, delta = 0.1)")
epochs = 1500 if full else 30
vi = fit(DNN2GPRegressor(prior_precision=0.1, inference="vi", posterior="full",
                         mc_samples=4, learning_rate_init=0.1, max_iter=epochs,
                         n_iter_no_change=epochs, **network), X, y)
print("GP with ConstantKernel() * RBF(), alpha = sigma^2")
gp = GaussianProcessRegressor(ConstantKernel() * RBF(), alpha=SIGMA**2,
                              n_restarts_optimizer=5 if full else 0,
                              random_state=0).fit(X, y)
print(f"  fitted kernel: {gp.kernel_}")

# %%
# The predictive std in the gap and on the data
# ---------------------------------------------
# For each fit, the mean predictive std of y inside the gap and at the training
# inputs, and its epistemic part alone (``sigma`` is the rest).

x = np.linspace(-4, 10, 600 if full else 200)
in_gap = np.linspace(*GAP, 31)
n_draws = 1000 if full else 100
curves, table = {}, []
for name, model in (("DNN2GP-Laplace", laplace), ("DNN2GP-VI", vi),
                    ("MC diagonal Laplace", diagonal), ("GP-RBF", gp)):
    where = {}
    for key, points in (("curve", x), ("gap", in_gap), ("data", X[:, 0])):
        points = points[:, None]
        if model is diagonal:
            mean, latent = sampled_predictive(model, points, n_draws)
        else:
            mean, latent = model.predict(points, return_std=True)
            if model is not gp:  # the GP's std is already the latent one
                latent = np.sqrt(model.predict_uncertainty(points)[0])
        where[key] = mean, np.sqrt(latent**2 + SIGMA**2), latent
    curves[name] = where["curve"]
    table.append((name, where["gap"][1].mean(), where["data"][1].mean(),
                  where["gap"][2].mean(), where["data"][2].mean()))
print(f"{'':20} {'predictive std of y':>25} {'epistemic std':>25}")
print(f"{'':20} {'in the gap':>12} {'on the data':>12} {'in the gap':>12} {'on the data':>12}")
for name, *values in table:
    print(f"{name:20} " + " ".join(f"{v:12.3f}" for v in values))

# %%
# The four predictives
# --------------------
# Mean +- 1 std, as in the paper, with the RBF GP's band for reference.

import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True, sharey=True,
                         layout="constrained")
gp_mean, gp_std, gp_latent = curves["GP-RBF"]
for ax, (name, (mean, std, latent)) in zip(axes.ravel(), curves.items()):
    ax.axvspan(*GAP, color="0.93", zorder=0)
    reference = {} if name == "GP-RBF" else dict(
        reference_mean=gp_mean, reference_std=gp_std, reference_name="GP-RBF")
    PredictiveDisplay(x, mean, std, epistemic_std=latent, X_train=X[:, 0], y_train=y,
                      **reference).plot(ax=ax, n_std=1, name=name, legend=False)
    ax.set_title(name, fontsize=10)
    ax.set(xlim=(x[0], x[-1]), ylim=(-2.7, 2))
# Under the panels: inside, the legend would cover data or bands.
fig.legend(handles=axes[0, 0].get_legend_handles_labels()[0], loc="outside lower center",
           ncol=3, fontsize=8, frameon=False)
fig.suptitle("Snelson data without $1.5 \\leq x \\leq 3$ (grey): mean $\\pm$ 1 std",
             fontsize=10)
print(f"time taken: {time.perf_counter() - start:.0f} s")

# The user guide's figure: ``DNN2GP_EXAMPLES_FULL=1 DNN2GP_FIGURE=docs/snelson_in_between.png
# python examples/plot_snelson_in_between.py``.
if os.environ.get("DNN2GP_FIGURE"):
    from _sweep import save_figure  # a PNG of 256 colours, a third of the size

    save_figure(fig, os.environ["DNN2GP_FIGURE"], dpi=80)

# %%
# What the paper shows and what we measured
# -----------------------------------------
# The paper's Fig. 3: DNN2GP's predictive widens between the clusters, as an
# RBF GP's does, while sampling the network under a diagonal Laplace posterior
# does not. In the paper's setting (``DNN2GP_EXAMPLES_FULL=1``; 2 CPU cores,
# torch 2.13) the mean predictive std of y in the gap is 0.48 for DNN2GP-Laplace
# and 0.45 for DNN2GP-VI against 0.30 on the data, the RBF GP's 0.52 against
# 0.30; the sampled diagonal Laplace gives 0.39 in the gap and 0.40 on the data.
# The short default run stops training early, so its VI band is narrower.
