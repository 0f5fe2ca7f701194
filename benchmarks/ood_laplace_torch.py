"""laplace-torch's recommended configuration on our trained classifier, for ``bench_ood.py``.

The row "laplace-torch" of ``bench_ood.py``: the network a ``DNN2GPClassifier``
trained (``clf.module_``, unchanged) is handed to laplace-torch (0.3) with the
configuration its documentation recommends, a last-layer K-FAC GGN posterior
whose prior precision maximises its Laplace marginal likelihood, predicted with
the linearised (GLM) predictive and the probit link::

    la = Laplace(model, "classification", subset_of_weights="last_layer",
                 hessian_structure="kron")
    la.fit(train_loader)  # the training data, one deterministic full batch
    la.optimize_prior_precision(method="marglik")
    proba = la(X, pred_type="glm", link_approx="probit")

``optimize_prior_precision`` is left at laplace-torch 0.3's defaults
(``ParametricLaplace``: ``pred_type='glm'``, a scalar prior precision started
at 1, 100 Adam steps of learning rate 0.1 on its logarithm; ``link_approx`` is
used only by ``method='gridsearch'``). Only the last layer's prior precision is
tuned; the network, and so its features, stay as our fit left them.

Install (benchmark only; keep torch at the project's 2.13.0)::

    pip install laplace-torch -c <(echo torch==2.13.0)

If ``import laplace`` then fails with "operator torchvision::nms does not
exist" (a torchvision wheel built for another torch), ``pip uninstall
torchvision``: laplace-torch does not need it (see ``bench_laplace_torch.py``).
"""

import copy
import warnings

import numpy as np
import torch
from bench_laplace_torch import default_dtype
from torch import nn


def _softmax_module(module):
    """A copy of a one-output (binary) network as a two-logit softmax network.

    The last ``nn.Linear``'s weight rows become ``[0; w]`` and its biases
    ``[0; b]``: the logits ``(0, f)`` give the same plug-in probabilities as
    ``sigmoid(f)``.
    """
    model = copy.deepcopy(module)
    last = model[-1]
    two = nn.Linear(last.in_features, 2, dtype=last.weight.dtype,
                    device=last.weight.device)
    with torch.no_grad():
        two.weight.zero_()
        two.bias.zero_()
        two.weight[1:] = last.weight
        two.bias[1:] = last.bias
    model[-1] = two
    return model


def laplace_torch_log_proba(clf, X_train, codes_train, sets):
    """Log class probabilities of laplace-torch's last-layer K-FAC Laplace of ``clf``'s network.

    Binary classifiers have one output, the logit ``f`` of class 1, while
    laplace-torch's classification likelihood is a softmax over ``K >= 2``
    logits; the network is therefore copied with a two-row last layer ``[0; w]``
    (biases ``[0; b]``), the logits ``(0, f)`` (laplace-torch's practice for two
    classes: a two-output softmax network). Its last-layer posterior then also
    covers the zero row: both rows are parameters with the prior, so the logit
    difference's variance has a contribution from the zero row that a
    one-output posterior does not have. ``[0; w]`` is a mode of the softmax
    likelihood but not of the posterior of the two-row network (that would be
    ``[-w/2; w/2]``, same probabilities, smaller norm); laplace-torch takes the
    given weights as the mode, as it does for any network it is handed.

    Parameters
    ----------
    clf : DNN2GPClassifier
        Fitted; ``clf.module_`` is used through a deep copy and is not modified.
    X_train : ndarray of shape (n_samples, n_features)
        The training inputs exactly as ``clf`` saw them (already scaled).
    codes_train : ndarray of shape (n_samples,)
        Integer class codes ``0..K-1`` of the training rows.
    sets : dict of str to ndarray of shape (n, n_features)
        Inputs to predict, already scaled like ``X_train``.

    Returns
    -------
    dict of str to ndarray of shape (n, K), or None
        Log class probabilities for each set (probabilities clipped at
        ``1e-300`` before the logarithm), or None when laplace-torch is not
        importable.
    """
    try:
        from laplace import Laplace
    except ImportError:
        return None
    except RuntimeError as error:
        # A torchvision built for another torch breaks torchmetrics' import.
        warnings.warn(f"laplace-torch is installed but does not import ({error}); "
                      "see benchmarks/ood_laplace_torch.py", stacklevel=2)
        return None
    from torch.utils.data import DataLoader, TensorDataset

    module = clf.module_
    if not (isinstance(module, nn.Sequential) and isinstance(module[-1], nn.Linear)):
        raise ValueError("laplace-torch's last layer needs a Sequential ending in a Linear")
    dtype = next(module.parameters()).dtype
    binary = len(clf.classes_) == 2 and module[-1].out_features == 1
    model = _softmax_module(module) if binary else copy.deepcopy(module)
    model.eval()
    for p in model.parameters():
        # The estimator freezes its fitted module; laplace-torch differentiates through it.
        p.requires_grad_(True)
    X_t = torch.as_tensor(np.asarray(X_train), dtype=dtype)
    y_t = torch.as_tensor(np.asarray(codes_train), dtype=torch.long)
    loader = DataLoader(TensorDataset(X_t, y_t), batch_size=len(X_t), shuffle=False)
    # laplace-torch creates some tensors (identities, prior precisions) in torch's
    # default dtype; float32 ones would round or clash with our float64 network.
    with default_dtype(dtype), warnings.catch_warnings():
        # Its reminder to predict with the tuned link; we predict with probit, its default.
        warnings.filterwarnings("ignore", message="By default `link_approx` is `probit`")
        la = Laplace(model, "classification", subset_of_weights="last_layer",
                     hessian_structure="kron")
        la.fit(loader)
        la.optimize_prior_precision(method="marglik")
        log_proba = {}
        for name, X in sets.items():
            proba = la(torch.as_tensor(np.asarray(X), dtype=dtype), pred_type="glm",
                       link_approx="probit")
            log_proba[name] = np.log(np.clip(proba.detach().numpy(), 1e-300, None))
    return log_proba
