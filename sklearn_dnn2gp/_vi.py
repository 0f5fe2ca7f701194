"""Variational inference: VOGN / OGN (Khan et al., 2018, 2019; Osawa et al., 2019).

The posterior structure (a class of :mod:`.posteriors`) holds ``S`` in its form;
this module never names one.
"""

import math
from typing import NamedTuple

import torch

from ._network import flat_parameters, set_flat_parameters
from ._training import (
    _check_not_worse,
    _minibatches,
    _run_epochs,
    _total_weight,
    full_objective,
    prior_penalty,
)
from .posteriors import FullPosterior, posterior_structure

# q(w) = N(mu, (S + delta I)^-1). Each step takes, on a minibatch B scaled by
# c = N / |B|, expectations over q (Monte-Carlo samples: VOGN; the mean: OGN) of
# the data term's gradient g = c sum_i w_i J_i^T r_i and GGN G = c sum_i w_i J_i^T Lambda_i J_i:
#     S   <- (1 - beta) S + beta G
#     m   <- momentum m + (1 - momentum) (g + delta mu),  m^ = m / (1 - momentum^t)
#     mu  <- mu - alpha_t (S + delta I)^-1 m^
# With momentum 0 (m^ = g + delta mu) and alpha = beta this is a natural-gradient
# step on the variational objective, exact inference in a GP (Theorem 2).
#
# With a K-FAC q (structure 'kron', MLPs) G and S are per layer G_l (x) A_l / N
# (KronCurvature): the minibatch's factors, G_l times c and A_l rescaled to the
# full data's N, averaged over the samples and then into S factor by factor.

# Stopping waits until the initial precision's weight (1 - beta)^t is below this.
_FORGOTTEN = 1e-3
# At a plateau the step size is divided by this, at most _ANNEALS times, before
# training stops: the mean's Monte-Carlo jitter shrinks with the step size.
# A plateau is a slope over WINDOW * n_iter_no_change epochs of the linearised
# objective that is no significant decrease (see train_vi).
WINDOW = 4
_ANNEAL = 10.0
_ANNEALS = 2


def burn_in_steps(beta):
    """The steps after which ``S`` has forgotten its start, ``(1 - beta)^t <= 1e-3``;
    VI's stopping rule waits for them."""
    return 1 if beta >= 1 else math.log(_FORGOTTEN) / math.log1p(-beta)


class VIState(NamedTuple):
    """What a VI ``callback`` sees after each epoch (copies; changing them does nothing).

    Attributes
    ----------
    iteration : int
        The epoch just finished (1-based).
    mean : torch.Tensor of shape (P,)
        The mean ``mu`` of ``q``.
    precision : torch.Tensor of shape (P,) or (P, P)
        ``S + delta I``: its diagonal for ``posterior='diag'``, else the matrix
        (for ``posterior='kron'`` formed from the Kronecker factors: O(P^2)
        memory per epoch, paid only when there is a callback).
    """

    iteration: int
    mean: torch.Tensor
    precision: torch.Tensor


def _loss_and_gradient(module, likelihood, X, y, weights):
    """The data term ``sum_i w_i l_i`` at ``module``'s weights and its gradient
    ``sum_i w_i J_i^T r_i`` (P,), by one backward pass."""
    params = list(module.parameters())
    with torch.enable_grad():
        loss = likelihood.loss(module(X), y, weights)
        grads = torch.autograd.grad(loss, params)
    return float(loss.detach()), torch.cat([g.reshape(-1) for g in grads]).to(torch.float64)


def data_gradient_and_ggn(module, likelihood, X, y, weights, points, structure):
    """Average over the weight vectors ``points`` (m, P) of the data term's
    gradient ``sum_i w_i J_i^T r_i``, its GGN (P-vector diagonal or P x P) and
    its value ``sum_i w_i l_i``. ``module`` is left at the last point.

    The gradient comes from one backward pass and the GGN from
    :func:`~sklearn_dnn2gp._curvature.ggn`, per example (never from squared
    gradients), which for an MLP with several outputs never forms the
    Jacobians: on digits (64-50-10) a full-batch step took about 4 s through
    the Jacobians and 20 ms this way.

    ``structure`` (a posterior class) holds the GGN in its form: a P x P
    matrix, its diagonal or, for K-FAC, a
    :class:`~sklearn_dnn2gp.posteriors.KronCurvature` averaged factor by factor.
    """
    grad = curvature = None
    loss = 0.0
    for point in points:
        set_flat_parameters(module, point)
        value, g = _loss_and_gradient(module, likelihood, X, y, weights)
        term = structure.data_curvature(module, likelihood, X, weights)
        curvature = term if curvature is None else structure.add_curvature(curvature, term)
        grad = g if grad is None else grad + g
        loss += value
    m = len(points)
    return grad / m, structure.divide_curvature(curvature, m), loss / m


def antithetic_sample(q, n_samples, generator, temperature=1.0):
    """``n_samples`` draws from ``q`` tempered at ``temperature`` (its covariance
    times ``temperature``) in antithetic pairs ``mu + z``, ``mu - z`` (an odd
    count ends with an unpaired ``mu + z``).

    Each draw is still distributed as ``q``, so the averages stay unbiased, but
    the part of the gradient that is linear in ``w - mu`` (the GGN times
    ``z``) cancels within a pair: with a diagonal ``q`` that part is what made
    VOGN's mean jitter, since a diagonal posterior ignores the couplings
    along which the GGN amplifies ``z``.
    """
    half = q.sample((n_samples + 1) // 2, generator)
    if temperature != 1:
        half = q.mean + math.sqrt(temperature) * (half - q.mean)
    return torch.cat([half, 2 * q.mean - half])[:n_samples]


class Momentum:
    """Adam's first moment: an exponential average of the gradients at rate
    ``1 - momentum``, divided by ``1 - momentum^t`` after ``t`` steps so that
    it is unbiased from the first step on (the average starts at zero).

    ``momentum=0`` returns every gradient unchanged, to the bit: the step is
    then the plain natural-gradient step of Theorem 2.
    """

    def __init__(self, momentum):
        self.momentum = float(momentum)
        self.average = None
        self.steps = 0

    def __call__(self, grad):
        self.steps += 1
        if self.average is None:
            self.average = torch.zeros_like(grad)
        self.average = self.momentum * self.average + (1 - self.momentum) * grad
        return self.average / (1 - self.momentum**self.steps)


def natural_gradient_step(q, curvature, grad, ggn, *, learning_rate, beta, momentum=None):
    """One VOGN / OGN update from ``q = N(mu, (S + delta I)^-1)`` given the
    (scaled) expected gradient and GGN of the data term. Return ``(q, S)``.

    ``momentum`` (a :class:`Momentum`, updated in place) averages the
    gradient of the variational objective ``g + delta mu`` over the steps
    before it is preconditioned by the new precision, as in Osawa et al.
    (2019); None takes the gradient as it is. For a K-FAC ``q`` the
    curvature and ``ggn`` are :class:`~sklearn_dnn2gp.posteriors.KronCurvature`
    over the same ``N`` (averaged factor by factor) and ``q`` a
    :class:`~sklearn_dnn2gp.posteriors.KronPosterior`, whose per-layer
    eigenbases apply ``(S + delta I)^-1`` exactly. ``q``'s class is the
    structure: it holds ``S`` in its form.
    """
    structure = type(q)
    curvature = structure.mix_curvature(curvature, ggn, beta)
    q = structure.from_curvature(q.mean, curvature, q.prior_precision)
    direction = grad + q.prior_precision * q.mean
    if momentum is not None:
        direction = momentum(direction)
    mean = q.mean - learning_rate * q.covariance_product(direction)
    return q.with_mean(mean), curvature


def vi_step(module, likelihood, X, y, weights, q, curvature, *, learning_rate, beta,
            scale=1.0, n_samples=None, generator=None, momentum=None, temperature=1.0):
    """A VOGN step on the minibatch ``(X, y, weights)`` (or OGN when ``n_samples``
    is None: expectations at the mean), its expectations over ``q`` tempered at
    ``temperature``. ``scale`` is ``N / batch size``; ``momentum`` is a
    :class:`Momentum` or None (see :func:`natural_gradient_step`).

    Return ``(q, curvature, data_loss)``: the next ``q`` and ``S``, and the
    unscaled data term averaged over the points where it was evaluated.
    """
    structure = type(q)
    points = (q.mean[None] if n_samples is None
              else antithetic_sample(q, n_samples, generator, temperature))
    grad, ggn, loss = data_gradient_and_ggn(module, likelihood, X, y, weights, points,
                                            structure)
    if not (math.isfinite(loss) and bool(torch.isfinite(grad).all())):
        return q, curvature, math.inf
    q, curvature = natural_gradient_step(q, curvature, scale * grad,
                                         structure.scale_curvature(ggn, scale, curvature),
                                         learning_rate=learning_rate, beta=beta,
                                         momentum=momentum)
    return q, curvature, loss


def kl_divergence(q, log_det_ratio=None):
    """``KL(q || p)`` for ``q = N(mu, (S + delta I)^-1)`` and the prior ``p = N(0, I / delta)``:
    ``1/2 (sum_j delta / (s_j + delta) - P + log|S + delta I| - P log delta) + delta/2 |mu|^2``
    with ``s_j`` the eigenvalues of ``S`` (its diagonal for a diagonal ``q``; for
    a K-FAC ``q`` the products of the factors' eigenvalues over ``N``, layer by layer).

    For a full ``q`` held as a Cholesky factor ``L`` of ``S + delta I`` (as every VI
    step leaves it), ``sum_j delta / (s_j + delta) = delta tr((S + delta I)^-1)``
    from that factor: once per epoch, and several times cheaper than the
    eigendecomposition the spectrum would need (P = 681, one thread: 30 ms
    against 200 ms)."""
    delta = q.prior_precision
    L = q.cholesky() if isinstance(q, FullPosterior) and not q.has_spectrum else None
    if L is not None:
        trace = delta * float(torch.cholesky_inverse(L).diagonal().sum()) - q.n_parameters
    else:
        s = q.curvature_scale * q.curvature_eigenvalues
        trace = float((delta / (s + delta)).sum()) - q.n_parameters
    if log_det_ratio is None:
        log_det_ratio = float(q.log_det_ratio())
    return 0.5 * (trace + log_det_ratio) + 0.5 * delta * float(q.mean @ q.mean)


def _step_size(learning_rate, momentum, step, annealed):
    """``alpha_t``: ``learning_rate`` ramped up linearly over the first
    ``1 / (1 - momentum)`` steps (none for ``momentum=0``), divided by
    ``_ANNEAL`` for each of the ``annealed`` plateaus so far.

    The ramp: Adam's bias correction makes the first steps full-size steps
    from an average of few gradients, and a diagonal precision overshoots
    along directions where many weights move together (on the Snelson data a
    step of 0.3 raised the objective 30-fold in its first steps, and
    diverged without momentum); the ramp lets the average fill first.
    """
    ramp = min(1.0, step * (1.0 - momentum))
    return learning_rate * ramp / _ANNEAL**annealed


def train_vi(module, likelihood, X, y, weights, *, prior_precision, method, structure,
             max_iter, learning_rate, beta, initial_precision, mc_samples, batch_size, tol,
             n_iter_no_change, generator, momentum=0.0, callback=None, verbose=0,
             temperature=1.0, warm=False):
    """Fit ``q = N(mu, (S + delta I)^-1)`` by VOGN (``method='vogn'``) or OGN.

    ``temperature`` ``T`` in [0, 1] tempers the posterior: likelihood and prior
    raised to ``1 / T``, whose Gaussian approximation is ``q_T = N(mu, T (S +
    delta I)^-1)``. VOGN then takes its expectations over ``q_T`` and minimises
    ``E_q_T[sum_i l_i + delta/2 |w|^2] - T H(q_T)``, i.e. the negative ELBO
    ``E_q_T[sum_i l_i] + KL(q_T || p)`` with the entropy's weight ``T``. The mean's
    step is unchanged (a Gauss-Newton step on the MAP objective); ``T = 1`` is
    plain VI and ``T -> 0`` OGN at the mean. ``warm``: the module is at a MAP.

    ``mu`` starts at the module's weights and ``S`` at ``initial_precision``
    times the identity (``structure`` 'full'), its diagonal ('diag') or the
    factors ``G_l = initial_precision I``, ``A_l = N I`` ('kron', an MLP), or,
    for ``initial_precision='auto'``, at the full-data GGN at those weights
    (for 'kron' its K-FAC factors): the data's own curvature scale, so the
    first steps are damped Gauss-Newton steps whatever N and the noise are. The mean's step is
    ``learning_rate`` times the bias-corrected ``momentum`` average of the
    gradient, preconditioned by the current precision (see
    :func:`_step_size` for its ramp).

    The objective of each epoch is that objective: the data term at the
    epoch's samples (at the mean for OGN) plus ``T KL(q || p) + (1 - T) delta/2
    |mu|^2`` (the negative ELBO at ``T = 1``); it is the loss curve. Its
    Monte-Carlo noise is tens of nats per epoch on the benchmarks, so the
    stopping rule watches the same objective for the network linearised at
    ``mu`` with ``S`` for its GGN: ``E_q_T[sum_i l_i] ~ sum_i l_i(mu) + T/2
    tr(S Sigma)``, and with ``tr((S + delta I) Sigma) = P`` the whole is
    ``sum_i l_i(mu) + delta/2 |mu|^2 + T/2 log|(S + delta I) / delta|`` (one
    forward pass per epoch; only the mean's jitter makes it noisy). A plateau
    is a slope of it over ``WINDOW * n_iter_no_change`` epochs that is no
    significant decrease (:func:`._training.trend_is_flat`); the first two
    divide the step size by 10, so that the mean's Monte-Carlo jitter
    (proportional to the step size) settles, with slopes over
    ``n_iter_no_change`` epochs after them, before the third stops training.
    No plateau counts before the precision has forgotten its start:
    ``(1 - beta)^t <= 1e-3`` after ``t`` steps. The module is left at ``mu``.

    Return ``(q, loss_curve, n_iter)``.
    """
    n = X.shape[0]
    mean = flat_parameters(module).to(torch.float64)
    n_params = mean.numel()
    structure = posterior_structure(structure)
    if initial_precision == "auto":
        curvature = structure.data_curvature(module, likelihood, X, weights)
    else:
        curvature = structure.constant_curvature(module, n_params, _total_weight(X, weights),
                                                 initial_precision, device=mean.device)
    q = structure.from_curvature(mean, curvature, prior_precision)
    average = Momentum(momentum)
    n_samples = mc_samples if method == "vogn" else None
    annealed = 0
    steps_per_epoch = math.ceil(n / batch_size)
    burn_in = math.ceil(burn_in_steps(beta) / steps_per_epoch)
    name = method.upper()

    def run_epoch(epoch):
        nonlocal q, curvature
        epoch_data = 0.0
        for idx in _minibatches(n, batch_size, generator, X.device):
            Xb = X[idx]
            wb = None if weights is None else weights[idx]
            step = _step_size(learning_rate, momentum, average.steps + 1, annealed)
            q, curvature, data = vi_step(
                module, likelihood, Xb, y[idx], wb, q, curvature, learning_rate=step,
                beta=beta, scale=n / Xb.shape[0], n_samples=n_samples, generator=generator,
                momentum=average, temperature=temperature)
            if not math.isfinite(data):
                return math.inf
            epoch_data += data
        if callback is not None:
            precision = structure.curvature_plus_identity(curvature, prior_precision, n_params)
            callback(VIState(epoch, q.mean.clone(), precision))
        log_det_ratio = float(q.log_det_ratio())
        sampled = epoch_data + temperature * kl_divergence(q, log_det_ratio)
        if temperature != 1:
            sampled += (1 - temperature) * float(prior_penalty(q.prior_precision, q.mean))
        set_flat_parameters(module, q.mean)
        at_mean = full_objective(module, likelihood, X, y, weights, prior_precision)
        return sampled, at_mean + 0.5 * temperature * log_det_ratio

    def on_plateau(epoch):
        nonlocal annealed
        if annealed == _ANNEALS:
            return False
        annealed += 1
        if verbose:
            print(f"  {name} epoch {epoch}: objective on a plateau, step size now "
                  f"{_step_size(learning_rate, momentum, average.steps, annealed):.3g}",
                  flush=True)
        return True

    initial = full_objective(module, likelihood, X, y, weights, prior_precision)
    total_weight = _total_weight(X, weights)
    try:
        loss_curve, n_iter = _run_epochs(
            run_epoch, max_iter=max_iter, tol=tol, total_weight=total_weight,
            n_iter_no_change=n_iter_no_change, learning_rate=learning_rate, solver="vi",
            name=name, verbose=verbose, burn_in=burn_in, on_plateau=on_plateau,
            window=WINDOW * n_iter_no_change)
    finally:
        set_flat_parameters(module, q.mean)
    # At the mean, without the KL term: the MAP objective the network started from.
    # From a MAP (warm) VI's mean leaves it by design. Jensen bounds what that costs
    # for a convex objective: U(mu) <= E_q_T[U], at most U(w*) + T P / 2 at q_T's
    # optimum in a quadratic model. A rise beyond that is taken for divergence.
    final = full_objective(module, likelihood, X, y, weights, prior_precision)
    slack = tol * total_weight
    if warm:
        slack = max(slack, 0.5 * temperature * n_params)
    _check_not_worse(initial, final, slack, name, "vi")
    return q, loss_curve, n_iter
