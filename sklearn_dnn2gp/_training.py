"""Training on the summed objective ``sum_i w_i l(y_i, f(x_i)) + delta/2 |w|^2``:
the MAP (Adam, L-BFGS) and the Gaussian variational posterior (VOGN, OGN)."""

import math
import warnings
from typing import NamedTuple

import torch
from sklearn.exceptions import ConvergenceWarning

from ._curvature import ggn, kfac_factors
from ._network import flat_parameters, set_flat_parameters
from ._posterior import FullPosterior, KronCurvature, add_to_diagonal, from_curvature
from ._verbose import Progress


def prior_penalty(prior_precision, w):
    """``delta/2 |w|^2``, or ``1/2 sum_j delta_j w_j^2`` for per-parameter precisions."""
    if torch.is_tensor(prior_precision):
        return 0.5 * (prior_precision.to(w) * w) @ w
    return 0.5 * prior_precision * (w @ w)


def _objective(module, likelihood, X, y, weights, prior_precision, scale=1.0):
    data = likelihood.loss(module(X), y, weights)
    w = flat_parameters_with_grad(module)
    return scale * data + prior_penalty(prior_precision, w), data


def flat_parameters_with_grad(module):
    return torch.cat([p.reshape(-1) for p in module.parameters()])


_HINTS = {
    "adam": "try a smaller learning_rate_init",
    "lbfgs": "standardise X and y, or use solver='adam' with a small learning_rate_init",
    "vi": "try a smaller learning_rate_init or a larger initial_precision",
}


def _diverged(iteration, learning_rate, solver):
    return ValueError(
        f"Training diverged: the objective became non-finite at iteration {iteration}; "
        f"{_HINTS[solver]} (learning_rate_init={learning_rate:g})."
    )


@torch.no_grad()
@torch.no_grad()
def full_objective(module, likelihood, X, y, weights, prior_precision):
    """The summed objective over all of the data, without gradients."""
    w = flat_parameters(module)
    return likelihood.total_loss(module, X, y, weights) + float(prior_penalty(prior_precision, w))


def _minibatches(n, batch_size, generator, device):
    """Index the examples of one epoch: in order for a full batch, else shuffled."""
    if batch_size >= n:
        yield slice(0, n)
        return
    order = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _run_epochs(run_epoch, *, max_iter, tol, total_weight, n_iter_no_change, learning_rate,
                solver, name, verbose, burn_in=0, on_plateau=None, smoothing=None):
    """Call ``run_epoch(epoch) -> objective`` until it stops improving.

    Shared by Adam and the VI optimisers. ``tol`` is on the objective per unit
    of sample weight, as scikit-learn's MLP uses a mean loss. Epochs up to
    ``burn_in`` never count towards stopping. With ``smoothing`` (a rate in
    (0, 1]) the rule watches the exponential average of a noisy objective
    rather than its values. At a plateau ``on_plateau(epoch)`` may return True
    to go on (e.g. with a smaller step size) instead of stopping.
    """
    loss_curve, best, stall = [], math.inf, 0
    progress = Progress(verbose, name, max_iter, "epoch")
    monitor = None
    for epoch in range(1, max_iter + 1):
        loss = run_epoch(epoch)
        if not math.isfinite(loss):
            raise _diverged(epoch, learning_rate, solver)
        loss_curve.append(loss)
        progress.update(epoch, loss)
        if smoothing is None or monitor is None:
            monitor = loss
        else:
            monitor = (1 - smoothing) * monitor + smoothing * loss
        if epoch <= burn_in:
            stall = 0
        elif monitor > best - tol * total_weight:
            stall += 1
        else:
            stall = 0
        best = min(best, monitor)
        if stall >= n_iter_no_change:
            if on_plateau is not None and on_plateau(epoch):
                stall = 0
                continue
            break
    else:
        warnings.warn(
            f"{name} reached max_iter={max_iter} before the objective stopped improving; "
            "increase max_iter.",
            ConvergenceWarning,
        )
    progress.update(len(loss_curve), loss_curve[-1], final=True)
    return loss_curve, len(loss_curve)


def _check_not_worse(initial, final, slack, name, solver):
    """Warn when training ended above the objective it started from: steps that
    large give a network worse than its random initialisation, silently."""
    if final > initial + slack:
        warnings.warn(
            f"{name} ended with a larger objective ({final:.4g}) than it started from "
            f"({initial:.4g}): its steps diverged and the fit is worse than the initial "
            f"network; {_HINTS[solver]}.",
            ConvergenceWarning,
            stacklevel=5,
        )


def _total_weight(X, weights):
    return float(weights.sum()) if weights is not None else float(X.shape[0])


def train_map(module, likelihood, X, y, weights, *, prior_precision, solver, max_iter,
              learning_rate, batch_size, tol, n_iter_no_change, generator, verbose=0):
    """Train ``module`` in place to the MAP. Return ``(loss_curve, n_iter)``.

    ``loss_curve`` holds the summed objective after each epoch (adam) or each
    function evaluation of the accepted iterates (lbfgs). Minibatch losses are
    scaled by ``N / batch`` so their expectation is the summed objective.
    """
    n = X.shape[0]
    if solver == "lbfgs":
        return _train_lbfgs(module, likelihood, X, y, weights, prior_precision, max_iter,
                            tol, learning_rate, verbose)
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)

    def run_epoch(epoch):
        epoch_data = 0.0
        for idx in _minibatches(n, batch_size, generator, X.device):
            Xb, yb = X[idx], y[idx]
            wb = None if weights is None else weights[idx]
            optimizer.zero_grad()
            loss, data = _objective(module, likelihood, Xb, yb, wb, prior_precision,
                                    scale=n / Xb.shape[0])
            loss.backward()
            optimizer.step()
            epoch_data += float(data.detach())
        return epoch_data + float(prior_penalty(prior_precision, flat_parameters(module)))

    initial = full_objective(module, likelihood, X, y, weights, prior_precision)
    total_weight = _total_weight(X, weights)
    result = _run_epochs(run_epoch, max_iter=max_iter, tol=tol, total_weight=total_weight,
                         n_iter_no_change=n_iter_no_change, learning_rate=learning_rate,
                         solver="adam", name="Adam", verbose=verbose)
    final = full_objective(module, likelihood, X, y, weights, prior_precision)
    _check_not_worse(initial, final, tol * total_weight, "Adam", "adam")
    return result


def lbfgs_gradient_tolerance(X, weights, tol):
    """L-BFGS's threshold on the largest gradient entry of the summed objective:
    ``tol * max(1, total sample weight)``.

    The summed objective ``sum_i w_i l_i + delta/2 |w|^2`` and its gradient grow
    with the total sample weight; measured per unit of it, ``tol`` bounds the
    gradient of the *mean* loss, as scikit-learn's MLP does (``gtol``), whatever
    the data size. The ``max(1, .)`` keeps the absolute ``tol`` for tiny or
    heavily down-weighted data. (It is not divided by a Gaussian's noise
    precision ``1 / sigma^2``, which would loosen it with a small ``noise_std``:
    the evidence identities the tests check at default settings need the
    tighter one.)
    """
    return tol * max(1.0, _total_weight(X, weights))


def _train_lbfgs(module, likelihood, X, y, weights, prior_precision, max_iter, tol,
                 learning_rate, verbose):
    """Full-batch L-BFGS (strong Wolfe line search) until the gradient's max-norm
    is below :func:`lbfgs_gradient_tolerance`, or when an iteration changes the
    objective (or every weight) by less than ``1e-6`` of that threshold: ``1e-6
    tol`` per unit of sample weight, a relative change of ~1e-11 for a loss of
    order one per example, where L-BFGS has stalled (float32 arithmetic, or a
    flat valley it would take thousands more iterations to cross). A
    ConvergenceWarning says that ``max_iter`` came first, with the gradient
    still above the threshold."""
    threshold = lbfgs_gradient_tolerance(X, weights, tol)
    optimizer = torch.optim.LBFGS(
        module.parameters(), lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
        tolerance_grad=threshold, tolerance_change=threshold * 1e-6, history_size=20,
        line_search_fn="strong_wolfe",
    )
    evaluations = []
    progress = Progress(verbose, "L-BFGS", max_iter, "iteration")
    state = optimizer.state[optimizer._params[0]]

    def closure():
        optimizer.zero_grad()
        loss, _ = _objective(module, likelihood, X, y, weights, prior_precision)
        value = loss.item()
        if not math.isfinite(value):
            raise _diverged(len(evaluations) + 1, learning_rate, "lbfgs")
        loss.backward()
        evaluations.append(value)
        progress.update(state.get("n_iter", 0), value)
        return loss

    optimizer.step(closure)
    n_iter = int(state["n_iter"])
    progress.update(n_iter, evaluations[-1], final=True)
    grad_norm = max(float(p.grad.abs().max()) for p in module.parameters())
    if n_iter >= max_iter and grad_norm > threshold:
        warnings.warn(
            f"L-BFGS reached max_iter={max_iter} with a gradient of max-norm "
            f"{grad_norm:.3g} > {threshold:.3g} (tol={tol:g} per unit of sample weight); "
            "increase max_iter.",
            ConvergenceWarning,
        )
    return evaluations, n_iter


# ---------------------------------------------------------------------------
# Variational inference: VOGN / OGN (Khan et al., 2018, 2019; Osawa et al., 2019)
#
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

    ``structure='kron'`` (an MLP) averages the K-FAC factors of the GGN
    (:func:`~sklearn_dnn2gp._curvature.kfac_factors`) instead, factor by
    factor, as a :class:`~sklearn_dnn2gp._posterior.KronCurvature` over the
    batch's total weight.
    """
    grad = curvature = None
    loss = 0.0
    for point in points:
        set_flat_parameters(module, point)
        value, g = _loss_and_gradient(module, likelihood, X, y, weights)
        if structure == "kron":
            term = KronCurvature(*kfac_factors(module, likelihood, X, weights))
            curvature = term if curvature is None else curvature.add(term)
        else:
            term = ggn(module, likelihood, X, weights, structure)
            curvature = term if curvature is None else curvature + term
        grad = g if grad is None else grad + g
        loss += value
    m = len(points)
    return grad / m, curvature / m, loss / m


def _structure_of(curvature):
    """'kron', 'diag' or 'full': how ``S`` is held."""
    if isinstance(curvature, KronCurvature):
        return "kron"
    return "diag" if curvature.dim() == 1 else "full"


def _scaled(ggn, scale, curvature):
    """``scale`` times a minibatch's GGN; a K-FAC one is expressed over ``S``'s ``N``
    so the two average factor by factor."""
    if isinstance(ggn, KronCurvature):
        return ggn.scaled(scale, curvature.total_weight)
    return scale * ggn


def antithetic_sample(q, n_samples, generator):
    """``n_samples`` draws from ``q`` in antithetic pairs ``mu + z``, ``mu - z``
    (an odd count ends with an unpaired ``mu + z``).

    Each draw is still distributed as ``q``, so the averages stay unbiased, but
    the part of the gradient that is linear in ``w - mu`` (the GGN times
    ``z``) cancels within a pair: with a diagonal ``q`` that part is what made
    VOGN's mean jitter, since a diagonal posterior ignores the couplings
    along which the GGN amplifies ``z``.
    """
    half = q.sample((n_samples + 1) // 2, generator)
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
    curvature and ``ggn`` are :class:`~sklearn_dnn2gp._posterior.KronCurvature`
    over the same ``N`` (averaged factor by factor) and ``q`` a
    :class:`~sklearn_dnn2gp._posterior.KronPosterior`, whose per-layer
    eigenbases apply ``(S + delta I)^-1`` exactly.
    """
    if isinstance(curvature, KronCurvature):
        curvature = curvature.mix(ggn, beta)
    else:
        curvature = (1 - beta) * curvature + beta * ggn
    q = from_curvature(q.mean, curvature, q.prior_precision)
    direction = grad + q.prior_precision * q.mean
    if momentum is not None:
        direction = momentum(direction)
    mean = q.mean - learning_rate * q.covariance_product(direction)
    return q.with_mean(mean), curvature


def vi_step(module, likelihood, X, y, weights, q, curvature, *, learning_rate, beta,
            scale=1.0, n_samples=None, generator=None, momentum=None):
    """A VOGN step on the minibatch ``(X, y, weights)`` (or OGN when ``n_samples``
    is None: expectations at the mean). ``scale`` is ``N / batch size``;
    ``momentum`` is a :class:`Momentum` or None (see :func:`natural_gradient_step`).

    Return ``(q, curvature, data_loss)``: the next ``q`` and ``S``, and the
    unscaled data term averaged over the points where it was evaluated.
    """
    structure = _structure_of(curvature)
    points = q.mean[None] if n_samples is None else antithetic_sample(q, n_samples, generator)
    grad, ggn, loss = data_gradient_and_ggn(module, likelihood, X, y, weights, points,
                                            structure)
    if not (math.isfinite(loss) and bool(torch.isfinite(grad).all())):
        return q, curvature, math.inf
    q, curvature = natural_gradient_step(q, curvature, scale * grad,
                                         _scaled(ggn, scale, curvature),
                                         learning_rate=learning_rate, beta=beta,
                                         momentum=momentum)
    return q, curvature, loss


def kl_divergence(q):
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
    return 0.5 * (trace + float(q.log_det_ratio())) + 0.5 * delta * float(q.mean @ q.mean)


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
             n_iter_no_change, generator, momentum=0.0, callback=None, verbose=0):
    """Fit ``q = N(mu, (S + delta I)^-1)`` by VOGN (``method='vogn'``) or OGN.

    ``mu`` starts at the module's weights and ``S`` at ``initial_precision``
    times the identity (``structure`` 'full'), its diagonal ('diag') or the
    factors ``G_l = initial_precision I``, ``A_l = N I`` ('kron', an MLP), or,
    for ``initial_precision='auto'``, at the full-data GGN at those weights
    (for 'kron' its K-FAC factors): the data's own curvature scale, so the
    first steps are damped Gauss-Newton steps whatever N and the noise are. The mean's step is
    ``learning_rate`` times the bias-corrected ``momentum`` average of the
    gradient, preconditioned by the current precision (see
    :func:`_step_size` for its ramp).

    The objective of each epoch is the negative ELBO: the data term at the
    epoch's samples (at the mean for OGN) plus ``KL(q || p)``. VOGN's estimate
    of it is noisy (by tens of nats per epoch on the benchmarks), so the
    stopping rule, Adam's with ``tol`` and ``n_iter_no_change``, watches its
    exponential average over about ``n_iter_no_change`` epochs, and a plateau
    first divides the step size by 10, twice, so that the mean's Monte-Carlo
    jitter (proportional to the step size) settles, before training stops.
    No plateau counts before the precision has forgotten its start:
    ``(1 - beta)^t <= 1e-3`` after ``t`` steps. The module is left at ``mu``.

    Return ``(q, loss_curve, n_iter)``.
    """
    n = X.shape[0]
    mean = flat_parameters(module).to(torch.float64)
    n_params = mean.numel()
    shape = (n_params,) if structure == "diag" else (n_params, n_params)
    if structure == "kron":
        total = _total_weight(X, weights)
        if initial_precision == "auto":
            curvature = KronCurvature(*kfac_factors(module, likelihood, X, weights))
        else:
            curvature = KronCurvature.identity(module, total, float(initial_precision),
                                               device=mean.device)
    elif initial_precision == "auto":
        _, curvature, _ = data_gradient_and_ggn(module, likelihood, X, y, weights, mean[None],
                                                structure)
    else:
        curvature = add_to_diagonal(
            torch.zeros(shape, dtype=torch.float64, device=mean.device),
            float(initial_precision))
    q = from_curvature(mean, curvature, prior_precision)
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
                momentum=average)
            if not math.isfinite(data):
                return math.inf
            epoch_data += data
        if callback is not None:
            if isinstance(curvature, KronCurvature):
                precision = curvature.plus_identity(prior_precision, n_params)
            else:
                precision = add_to_diagonal(curvature, prior_precision)
            callback(VIState(epoch, q.mean.clone(), precision))
        return epoch_data + kl_divergence(q)

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
            smoothing=2 / (n_iter_no_change + 1))
    finally:
        set_flat_parameters(module, q.mean)
    # At the mean, without the KL term: the MAP objective the network started from.
    final = full_objective(module, likelihood, X, y, weights, prior_precision)
    _check_not_worse(initial, final, tol * total_weight, name, "vi")
    return q, loss_curve, n_iter
