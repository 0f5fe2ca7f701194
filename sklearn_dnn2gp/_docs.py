"""Docstring entries of the parameters and attributes both estimators share, written once.

The estimators' docstrings hold ``%(network)s``, ``%(inference)s``,
``%(training)s`` and ``%(fitted)s`` (shared fitted attributes) where these
entries go; :func:`fill_shared_parameters` fills
them in when the class is defined.
"""

_NETWORK = """\
    hidden_layer_sizes : tuple of int, default=(50,)
        Widths of the hidden layers; ``()`` gives a linear model: Bayesian
        linear regression for the regressor, Bayesian logistic / softmax
        regression for the classifier.
    activation : {'tanh', 'relu', 'sigmoid', 'identity'}, default='tanh'
        Hidden-layer nonlinearity.
    module : callable or None, default=None
        A network to train instead of the MLP of ``hidden_layer_sizes`` and
        ``activation``: a callable ``(n_features, n_outputs) ->
        torch.nn.Module`` (a top-level function or a class, so that the
        estimator clones and pickles), called at every ``fit``. The module
        maps inputs of shape (n, n_features) to outputs of shape
        (n, n_outputs), reshaping inside if it works on images. It is
        initialised under ``random_state`` (torch's global random state is
        saved and restored around the call) and kept in eval mode (no
        dropout, frozen batch norm), so that the objective is a deterministic
        function of the weights. Its Jacobians come from ``torch.func``
        (``vmap(jacrev)``), analytically for ``Linear`` layers and elementwise
        activations in a ``Sequential``; ``posterior='kron'`` needs such a
        chain, and ``subset_of_weights='last_layer'`` a ``Sequential`` ending
        in a ``Linear``. Every parameter is trained and gets a posterior, so
        each must be a floating-point tensor with ``requires_grad=True``,
        registered once (a layer may be called more than once) and used by
        ``forward``; fixed tensors belong in buffers, which ``forward`` must not
        change. ``fit`` checks this, the output shape and that ``forward`` is
        deterministic on two training rows first, and refuses a module that
        breaks it with a message that names the problem.
    prior_precision : float, array-like of shape (n_layers,) or 'auto', default='auto'
        Precision ``delta`` of the Gaussian prior ``N(0, I / delta)`` on all
        weights and biases, or one precision per layer (see
        ``prior_structure``). ``'auto'``: set by the evidence during ``fit`` (fitted
        attribute ``prior_precision_``), as the maximiser of the evidence of
        networks retrained at each candidate: a climb over half-decade steps
        from ``delta = 1`` (for a regressor along ``delta sigma^2``, the only
        combination the MAP depends on, from 10 times y's variance, with
        ``sigma`` maximised in closed form on each ray), each retraining
        warm-started from the best network so far and stopped at ``10 tol``
        or 500 iterations, then parabolic refinement until it promises less
        than a quarter nat; the best is trained on to ``tol``. Every
        trial is in ``evidence_trace_``. It costs 2-6 single fits at the chosen point
        (``benchmarks/bench_defaults.py``). Under
        ``inference='vi'`` the search trains MAPs and one VI fit follows at
        the chosen point.
    prior_structure : {'scalar', 'layerwise'}, default='scalar'
        ``'layerwise'``: one prior precision per layer, i.e. per submodule
        holding parameters (an MLP's ``Linear`` layers, weights and biases
        together), in the order of ``module.parameters()``; an array
        ``prior_precision`` implies it. The training objective, the
        posterior (Laplace only), the predictive and the evidence use
        ``diag(delta)`` in place of ``delta I``. With ``'auto'`` the common
        precision is searched first, then one sweep of the same search
        runs over each layer's precision in turn (coordinate ascent of the
        retrained evidence), so it costs about ``1 + n_layers`` times the
        search of one precision; ``prior_precision_`` is then an array of
        ``n_layers``.
    evidence_search : {'retrain', 'staged'}, default='retrain'
        How ``'auto'`` hyperparameters are searched. ``'retrain'``: the climb
        over retrained networks described under ``prior_precision``.
        ``'staged'``: one training, warm-started from stage to stage, moved
        each time by the derivative of the retrained evidence (the closed
        form's, plus how the weights move with ``delta``: ``dw*/d log delta =
        -delta H^-1 w*`` with the exact Hessian, by conjugate gradients, and
        the log-determinant's change along it), stopping when a step would
        gain less than 0.05 nats; MacKay's update without the second part
        lies at too small a ``delta``. One prior precision over all weights
        only (else ``'retrain'`` runs). It reaches the same evidence in 2-9
        stages; each costs about two curvatures, so it is the faster where
        training dominates (friedman1), the slower where the curvature does
        (digits). The search that ran is ``evidence_search_``.
"""

_INFERENCE = """\
    posterior : {'auto', 'full', 'kron', 'diag'}, default='auto'
        Structure of the GGN, and under ``inference='vi'`` of the precision
        of ``q``. ``'full'`` is exact: a P x P matrix (or N K x N K in
        function space, when smaller), memory ~ 8 P^2 bytes a few times over
        and time ~ P^3. ``'kron'`` is K-FAC (MLPs only): per layer the
        Kronecker product of a d_out x d_out and a (d_in + 1) x (d_in + 1)
        factor, no correlations between layers, for MLPs of real size. Under
        VI (noisy-K-FAC-style VOGN) ``S`` keeps running averages of the
        minibatches' factors, averaged factor by factor (the standard K-FAC
        approximation, not the average of the Kronecker products), and
        :meth:`iterate_gp` is not available.
        ``'diag'`` keeps the diagonal only. ``'auto'``: for Laplace, the full
        posterior while it is expected to need at most a quarter of the
        memory available and at most 30 s, else ``'kron'``. For VI,
        ``'full'`` (VOGGN) while its P x P factorisations, one per step, are
        expected to take at most 10 s over a default fit and its matrices a
        quarter of the memory (with the defaults up to about P = 450: the
        Snelson 1-32-1 network, not the 11-20-20-1 wine or 64-50-10 digits
        ones), else ``'diag'``. A diagonal ``q`` is the mean-field optimum,
        not a Laplace posterior: on small nonlinear networks it fits the
        training data less closely than the MAP (Snelson, 1-32-1: training
        RMSE 0.54 against the MAP's 0.44 and full VI's 0.45) and shows no
        in-between uncertainty, which full VI does; mean-field Gaussians
        cannot show it in one-hidden-layer networks (Foong et al., 2019).
    subset_of_weights : {'all', 'last_layer'}, default='all'
        Which weights the Laplace posterior is over. ``'last_layer'``: the
        output layer only, a Bayesian linear (or logistic / softmax) model on
        the features the trained hidden layers compute, which stay fixed at
        their MAP values; the mean is still the whole network. The
        predictive, ``kernel`` and ``features`` are then those of the last
        layer, and the evidence is that of the last layer given the features.
        Cheap for any width, and for classification it is not as
        underconfident as the all-weights posterior under one isotropic
        prior. Laplace only.
    inference : {'laplace', 'vi'}, default='laplace'
        ``'laplace'``: train to the MAP with ``solver``, then the Laplace-GGN
        posterior ``N(w*, (G + delta I)^-1)``. ``'vi'``: train with ``vi_method``
        and keep its ``q = N(mu, (S + delta I)^-1)``, where ``S`` is the
        exponential average of the expected GGN. With a full ``q`` (and for
        the classifier's ``temperature='auto'``) VI starts from the MAP at the
        same hyperparameters, trained first with ``solver``: from a random
        start VOGN settled on a smoother fit than L-BFGS's on one Snelson seed
        in three at ``delta = 0.1`` (training RMSE 0.39 against 0.28). A
        diagonal or K-FAC ``q`` starts from the initial weights: from the MAP
        a diagonal ``q`` stayed about 80 nats of ELBO short of its optimum,
        which lies far from the MAP.
    vi_method : {'vogn', 'ogn'}, default='vogn'
        With ``inference='vi'``: on each minibatch (scaled by
        ``N / batch size``) take the expected data gradient ``g`` and GGN
        ``G`` (per example, never squared gradients) over ``mc_samples``
        draws from ``q`` (``'vogn'``) or at its mean (``'ogn'``,
        deterministic; its fixed point is the MAP and ``S`` there is the
        GGN), then ``S <- (1 - beta) S + beta G``, average ``g + delta mu``
        with ``momentum`` and step ``mu <- mu - alpha (S + delta I)^-1 m``
        with ``alpha = learning_rate_init`` (Osawa et al., 2019).
    mc_samples : int or 'auto', default='auto'
        Draws from ``q`` per VOGN step, in antithetic pairs ``mu + z``,
        ``mu - z``: the part of the gradient linear in ``z`` cancels within a
        pair. ``'auto'``: one pair for a full ``q``, one draw otherwise. A
        second draw doubled the cost of a fit without a consistently better fit
        on the wine and digits benchmarks (diagonal ``q``); a full ``q`` is
        chosen only where its steps are cheap, and at a small prior precision
        its draws are far apart: on Snelson at ``delta = 0.1`` the pair, with
        a full ``q``'s larger step (``learning_rate_init``), took the predictive
        std in the gap from 1.32 to 1.68 times that on the data (mean of 3
        seeds; Laplace 1.83, ``benchmarks/bench_vi.py``).
    precision_rate : float in (0, 1] or None, default=None
        The averaging rate ``beta`` of ``S``; None uses
        ``learning_rate_init`` (``1e-2`` for ``'auto'``), the natural-gradient
        step of the paper (the
        mean's and the precision's rates equal), for which a momentum-free
        step is exact inference in a GP (Theorem 2). ``S`` then averages the
        sampled GGNs of the last ``~1 / beta`` steps (100 by default), which
        smooths their Monte-Carlo noise.
    initial_precision : float or 'auto', default='auto'
        ``S`` at the start. ``'auto'``: the GGN of the full training set at
        the weights ``w_0`` that VI starts from (its diagonal for a diagonal
        ``q``; from a MAP, ``q`` starts at the Laplace posterior), so the first
        steps are damped Gauss-Newton steps on the data's own curvature scale; a
        constant precision that is small against ``N / sigma^2`` lets the
        first steps overshoot. A float ``s``: ``q`` starts at
        ``N(w_0, (s + prior_precision)^-1 I)``.
"""

_TRAINING = """\
    solver : {'auto', 'lbfgs', 'adam'}, default='auto'
        Optimiser of the MAP objective (also under ``inference='vi'``, for a
        MAP that VI starts from). L-BFGS on the full batch reaches a
        stationary point, which is where the Laplace and GP views coincide;
        Adam takes minibatches of ``batch_size``. ``'auto'``: L-BFGS up to
        4096 training examples, Adam beyond.
    max_iter : int, default=5000
        Iterations of L-BFGS, or epochs of Adam or of VI (under
        ``inference='vi'`` it bounds the MAP's training and VI's epochs alike).
    learning_rate_init : float or 'auto', default='auto'
        Adam's step size, or VI's step ``alpha`` of the mean (unused by
        L-BFGS). ``'auto'``: ``1e-2``, and ``3e-2`` for VI with a full ``q``,
        whose step is an exact damped Gauss-Newton step with none of the
        diagonal's overshoot described next. For VI, ``alpha = 1`` would be a
        full Gauss-Newton step; a
        diagonal precision overestimates such a step along directions where
        many weights move together (by a factor of 48-85, the largest
        eigenvalue of ``diag(G + delta)^-1 (G + delta)``, on the Snelson,
        wine and digits networks), and VOGN's mean jitters by an amount
        proportional to ``alpha`` times that factor. ``1e-2`` kept the jitter
        small on all three; larger steps (``0.03-0.1``) fitted digits worse.
    batch_size : int or 'auto', default='auto'
        Adam's or VI's minibatch size. 'auto': for Adam the full batch up to
        4096 examples and 256 beyond; for VI batches of about 128 examples
        (equal sizes, so that no small last batch is scaled up), because a
        step on 128 examples costs a fraction of a full-batch one and VOGN's
        own Monte-Carlo noise exceeds the minibatch's. Each minibatch is
        scaled by ``N / batch size``, so that it stands for the whole sum.
    tol : float, default=1e-5
        The stopping tolerance, per unit of sample weight so that one value
        suits any data size. L-BFGS stops when the largest gradient entry of
        the summed objective is below ``tol * max(1, sum of sample weights)``
        (the gradient of the mean loss below ``tol``, as scikit-learn's MLP),
        or when an iteration changes the objective by less than ``1e-6`` of
        that (a stall); it warns only when it reaches ``max_iter`` first.
        Adam stops when the objective per unit of sample weight improves by
        less than ``tol`` for ``n_iter_no_change`` epochs. VI's objective, the
        negative ELBO at each step's samples (``loss_curve_``), has a
        Monte-Carlo noise of tens of nats per epoch, so VI watches instead the
        negative ELBO of the network linearised at the mean with ``S`` for its
        GGN, ``sum_i l_i(mu) + delta/2 |mu|^2 + 1/2 log|(S + delta I) /
        delta|``, whose noise is only the mean's jitter (a few nats on
        Snelson), and finds a plateau where its least-squares slope over the
        last ``4 * n_iter_no_change`` epochs is no significant decrease (above
        ``-tol`` per unit of sample weight, or within two standard errors of
        zero). The first two plateaus divide the step size by 10 (which
        shrinks the mean's jitter; then the slope is taken over
        ``n_iter_no_change`` epochs) before the third stops training. The
        earlier rule, on the sampled objective's moving average, stopped
        Snelson at ``delta = 0.1`` after about 400 epochs, 29-54 nats short of
        a ten times longer run. VI never stops before ``(1 - beta)^t <= 1e-3``
        after ``t`` steps, so that ``S`` has forgotten ``initial_precision``.
    n_iter_no_change : int, default=10
        Patience of Adam's stopping rule; VI's takes slopes over 4 and 1 times
        as many epochs (see ``tol``).
    random_state : int, RandomState instance or None, default=None
        Seeds a local ``torch.Generator`` for the initial weights, the
        minibatch order and VOGN's samples; the global torch seed is never
        used.
    device : {'auto', 'cpu', 'cuda'} or torch.device, default='auto'
        Where to train; 'auto' takes CUDA when available. Fitted tensors are
        moved to the CPU when pickled.
    dtype : {'float64', 'float32'}, default='float64'
        Precision of the network. Curvature, posterior and evidence are always
        computed in float64.
    verbose : int, default=0
        1: print the phases of ``fit`` (training, curvature and posterior)
        with their times, and the objective at most ~20 times per
        optimiser (and VI's step-size reductions) but at least every 10
        seconds; 2: up to ~100 times. ``fit`` ends with one line: the chosen
        hyperparameters, the number of trainings and the time.
    callback : callable or None, default=None
        With ``inference='vi'``, called after every epoch as
        ``callback(state)`` with a ``VIState`` (``iteration``, ``mean``,
        ``precision``: copies as tensors; ``precision`` is the diagonal for
        ``posterior='diag'``, else the P x P matrix, for ``'kron'`` formed from
        its factors at O(P^2) memory per epoch). Pass a state to :meth:`iterate_gp` to see the
        GP and its kernel at that iterate.
    warm_start : bool, default=False
        Start training from the weights of the previous call to ``fit`` when
        the architecture is unchanged (e.g. after ``set_params`` of
        ``prior_precision``); otherwise from a fresh initialisation.
    n_threads : int, 'auto' or None, default='auto'
        Torch intra-op threads inside ``fit`` and the prediction methods, set
        for the call and restored afterwards (the caller's setting is never
        left changed). ``'auto'``: one thread when a pass over the data costs
        under ~1e9 multiply-adds (there a second thread costs more than it
        gives: 5-50x slower fits were measured on a busy 2-core machine, e.g.
        digits 64-50-10 in 3.2 s on one thread and 25.9 s on two), torch's own
        setting above. ``None`` leaves torch's setting alone.
    momentum : float in [0, 1), default=0.9
        With ``inference='vi'``: the rate ``b`` of Adam's first moment,
        ``m <- b m + (1 - b) (g + delta mu)``, divided by ``1 - b^t`` after
        ``t`` steps (bias correction) before the natural-gradient step, as
        in Osawa et al. (2019). The step size ramps up linearly over the
        first ``1 / (1 - b)`` steps: with a diagonal precision the full-size
        first steps that the bias correction allows overshot (a step of 0.3
        raised the objective 30-fold on the Snelson data). ``0`` gives the
        plain step of Theorem 2 exactly; with momentum, :meth:`iterate_gp`
        still describes the momentum-free step from an iterate.
"""

_FITTED = """\
    evidence_search_ : {'retrain', 'staged'} or None
        The search that set the ``'auto'`` hyperparameters (None: none
        searched).
    evidence_trace_ : list of dict
        Only when a hyperparameter is ``'auto'``: one dict per network trained
        by the search (per stage for ``'staged'``), in order, with its ``prior_precision`` (and
        ``noise_std``, in the units of y), its evidence
        (``log_marginal_likelihood``, maximised over the noise along its
        ray) and its ``n_iter`` (None when training diverged there).
    posterior_ : FullPosterior, KronPosterior or DiagPosterior
        The Gaussian weight posterior ``N(mean, Sigma)`` over all ``P``
        parameters (in module order): the Laplace-GGN posterior, or VI's
        ``q``. It drives every uncertainty the estimator returns. A
        ``FullPosterior`` (``posterior='full'``) works in weight space
        (``space == 'weight'``: a Cholesky factor of the P x P precision,
        and its eigendecomposition once the evidence is asked at other
        hyperparameters) or in function space (``'function'``: the SVD of
        the N K x P whitened Jacobian), whichever is smaller; a
        ``KronPosterior`` holds per-layer Kronecker factors; a
        ``DiagPosterior`` the diagonal. All offer, as float64 tensors:
        ``mean`` (P,), ``prior_precision``, ``covariance()`` (P x P; dense,
        so only for moderate P), ``precision()``, ``covariance_product(v)``
        (``Sigma v`` without forming ``Sigma``), ``functional_variance(J)``
        (``J Sigma J^T`` for Jacobians of shape (n, K, P), e.g. from
        :meth:`features`), ``log_det_ratio()`` and
        ``sample(n_samples, generator)`` (weight vectors from a
        ``torch.Generator``).
    prior_precision_ : float or ndarray of shape (n_layers,)
        The prior precision ``delta`` of the fitted posterior and evidence:
        ``prior_precision``, or the evidence's choice when it is ``'auto'``;
        one per layer with ``prior_structure='layerwise'``.
        Methods read it (and every other setting) as it was at ``fit``: a
        later ``set_params`` takes effect at the next ``fit``.
    likelihood_ : object
        The fitted likelihood: ``Gaussian`` (with ``noise_std``) for the
        regressor, ``Bernoulli`` (two classes) or ``Categorical`` for the
        classifier. It owns the loss, the noise precision and the predictive
        in the space of ``y``.
"""


def fill_shared_parameters(cls):
    """Class decorator: put the shared parameter entries into ``cls.__doc__``."""
    cls.__doc__ = cls.__doc__ % {
        "network": _NETWORK.rstrip("\n").lstrip(),
        "inference": _INFERENCE.rstrip("\n").lstrip(),
        "training": _TRAINING.rstrip("\n").lstrip(),
        "fitted": _FITTED.rstrip("\n").lstrip(),
    }
    return cls
