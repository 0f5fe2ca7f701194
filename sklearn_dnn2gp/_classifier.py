"""DNN2GPClassifier: Laplace-GGN classification with the DNN2GP uncertainty."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._base import BaseDNN2GP, scoped_threads
from ._docs import fill_shared_parameters
from ._likelihoods import Bernoulli, Categorical, NoHyperparameters
from ._links import LINKS, label_uncertainty, probit_scaled_logits
from ._resources import check_memory
from ._targets import SameUnits
from ._tempering import TemperatureMixin
from ._theta import finite_evidence
from ._utils import make_generator, to_numpy, to_tensor


@fill_shared_parameters
class DNN2GPClassifier(ClassifierMixin, TemperatureMixin, BaseDNN2GP):
    """Neural-network classification with the uncertainty of its DNN2GP Gaussian process.

    ``fit`` trains a multi-layer perceptron to the minimum of
    ``sum_i w_i l(y_i, f_w(x_i)) + prior_precision / 2 |w|^2`` with the
    Bernoulli (two classes, one sigmoid output) or categorical (softmax)
    negative log-likelihood ``l``, then forms the Laplace posterior
    ``N(w*, (G + prior_precision I)^-1)`` with the generalized Gauss-Newton
    ``G = sum_i J_i^T Lambda_i J_i`` (``Lambda = diag(p) - p p^T``). In the
    DNN2GP view (Khan et al., 2019) the logits are a Gaussian process with the
    network's neural tangent kernel, and ``J Sigma J^T`` is their posterior
    covariance at a test point. With ``inference='vi'`` the network is instead
    trained by VOGN (or OGN) and its Gaussian ``q`` is the posterior; every VI
    step is exact inference in a GP (Theorem 2; see :meth:`iterate_gp`).

    Parameters
    ----------
    %(network)s
    link_approximation : {'meanfield', 'probit', 'mc', 'bridge', 'plugin'}, default='meanfield'
        How :meth:`predict_proba` maps the Gaussian over the logits,
        ``N(f_{w*}(x), temperature_ * J Sigma J^T + residual_scale_ r(x) I)``, to
        class probabilities.
        ``'meanfield'``: the softmax written over pairs of logits, ``p_k = 1 /
        sum_j exp(-(f_k - f_j))``, each difference divided by ``sqrt(1 + pi/8
        var(f_k - f_j))`` with the full covariance, then renormalised (Lu, Ie
        and Sha, 2020); for two classes it is the probit. ``'probit'``: each
        logit divided by ``sqrt(1 + pi/8 var)`` before the sigmoid / softmax;
        with three or more classes it also counts the variance the logits share,
        which the softmax ignores (at the same temperature its test NLL on iris
        was 1-3 %% above the mean field's; on wine and digits they were
        within 1 %%). ``'mc'``: the average over ``link_samples`` draws, the reference
        both approximate. ``'bridge'``: the mean of the Dirichlet that the
        Laplace bridge (Hobbhahn et al., 2022) matches to the Gaussian; it is
        the same for every temperature, and with two classes it equals the
        plug-in. ``'plugin'``: ``softmax(f_{w*}(x))``, no uncertainty.
    temperature : 'auto' or float in [0, 1], default='auto'
        The temperature ``T`` of the posterior the predictive uses: likelihood
        and prior raised to ``1/T``, i.e. the latent covariance scaled by ``T``
        (``T = 1``: the Laplace posterior as it is; ``T = 0``: the plug-in). It
        changes :meth:`predict_proba`, :meth:`predict`,
        :meth:`decision_function` and :meth:`predict_uncertainty`; the evidence,
        :meth:`predict_latent`, the kernel and the other GP views stay those of
        the untempered posterior.

        Why: with one isotropic prior on an MLP the GGN vanishes on confidently
        classified training points, so the posterior stays broad there and the
        untempered probit is underconfident in distribution (digits: test NLL
        0.43 against the plug-in's 0.088, the mean of 5 splits of
        ``benchmarks/bench_ood.py``), while the latent variance still separates
        the data from noise images by three orders of magnitude (mean logit
        variance 42 on test digits, 67,798 on noise). ``'auto'`` chooses ``T``
        in ``fit`` from the training set alone, on a grid (0 and quarter decades
        from 1e-4 to 1): the smaller of the largest ``T`` up to which the
        approximate leave-one-out NLL (the GP view's cavity of each training
        point) stays within a factor 1.01 of its minimum, and the largest ``T``
        up to which the NLL of the training labels stays within a factor 1.05 of
        the plug-in's; at least 1e-4 (:mod:`sklearn_dnn2gp._temperature` says
        why both). It uses at most 500 training rows, and 2,500 rows times
        classes (a random subset).
        With fewer than 20 rows (or sample weights summing to less) it takes
        1e-3 and warns. The chosen value is ``temperature_``; on the benchmark
        data (``benchmarks/bench_ood.py``) it lay between 3e-4 (digits, wine)
        and 0.56 (noisy moons). For ``'plugin'`` and ``'bridge'``, which do not
        depend on it, ``temperature_`` is 1.

        With ``inference='vi'`` VI itself trains at ``T``: VOGN draws from ``q``
        tempered at ``T``, ``N(mu, T (S + delta I)^-1)``, which makes ``q`` the
        Gaussian closest to the posterior raised to ``1/T`` (the negative ELBO
        with the entropy weighted by ``T``; ``T = 1``: plain VI, ``T -> 0``: the
        MAP), and the predictive uses that same tempered ``q``. ``'auto'``
        first trains the MAP at the same hyperparameters, chooses ``T`` on its
        Laplace posterior as above, and starts VI there. Why: at ``T = 1`` the
        ELBO on digits prefers a mean whose plug-in NLL is 1.4-1.7x the MAP's
        (``benchmarks/bench_vi.py``), which no temperature of the predictive
        alone undoes.
    residual_scale : 'auto' or float >= 0, default='auto'
        The scale ``s`` of a residual GP added to each logit of the predictive,
        independently: the kernel of infinitely many ReLU features on each
        standardised input (a cubic spline, Kristiadi, Hein and Hennig, 2021),
        conditioned on the training inputs, so its variance is small near them
        and grows as ``|x|^3`` away from them. Why: the network's own latent
        variance stops growing where tanh saturates or ReLU logits grow with it,
        so the predictive stayed confident far from the data (moons at ``10 X``:
        mean maximum probability 0.94-0.95; with the residual 0.54-0.61, at a
        test NLL within 0.5 %% of the temperature's alone; 5 splits of
        ``benchmarks/bench_ood.py``).
        ``'auto'`` chooses ``s`` in ``fit`` on the same training rows as the
        temperature: the largest on a grid (0 and half decades from 1e-4 to
        1e4) whose leave-one-out residual variance raises the NLL of the
        training labels by at most 1 %%. ``0`` turns it off; the GP view and
        the evidence never include it (:mod:`sklearn_dnn2gp._residual`).
    link_samples : int, default=100
        Draws for ``link_approximation='mc'`` (seeded by ``random_state``, so
        repeated calls agree).
    %(inference)s
    %(training)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    module_ : torch.nn.Module
        The trained network (one output for two classes, else one per class).
    %(fitted)s
    log_marginal_likelihood_ : float
        Laplace-GGN log evidence of the training labels; under
        ``inference='vi'`` at the final mean, with the exact GGN there.
    temperature_ : float
        The temperature of the predictive (see ``temperature``).
    temperature_curve_ : dict or None
        With ``temperature='auto'`` and a link that depends on it: the grid
        (``'temperature'``) and the two criteria at each value, the
        approximate leave-one-out NLL (``'loo_nll'``) and the NLL of the
        training labels (``'fit_nll'``), both per row; else None.
    residual_scale_ : float
        The scale of the predictive's residual GP (see ``residual_scale``); 0
        for ``'plugin'`` and where too few rows choose it.
    residual_curve_ : dict or None
        With ``residual_scale='auto'``: the grid (``'scale'``) and the criterion
        at each value (``'fit_nll'``); else None.
    loss_curve_ : list of float
    n_iter_ : int
    n_outputs_ : int
        Network outputs: 1 (one logit) for two classes, else one per class.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    See Also
    --------
    DNN2GPRegressor : The regression counterpart.

    References
    ----------
    M. E. Khan, A. Immer, E. Abedi, M. Korzepa. Approximate Inference Turns Deep
    Networks into Gaussian Processes. NeurIPS 2019.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from sklearn_dnn2gp import DNN2GPClassifier
    >>> X, y = make_moons(n_samples=100, noise=0.1, random_state=0)
    >>> clf = DNN2GPClassifier(hidden_layer_sizes=(20,), prior_precision=0.1,
    ...                        random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.95)
    True
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints = {
        **BaseDNN2GP._parameter_constraints,
        "link_approximation": [StrOptions(set(LINKS))],
        "link_samples": [Interval(Integral, 1, None, closed="left")],
        "temperature": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"})],
        "residual_scale": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
    }

    def __init__(self, hidden_layer_sizes=(50,), activation="tanh", *, module=None,
                 prior_precision="auto", prior_structure="scalar", evidence_search="retrain",
                 link_approximation="meanfield", temperature="auto", residual_scale="auto",
                 link_samples=100, posterior="auto", subset_of_weights="all",
                 inference="laplace", vi_method="vogn", mc_samples="auto", precision_rate=None,
                 initial_precision="auto", solver="auto", max_iter=5000,
                 learning_rate_init="auto", batch_size="auto", tol=1e-5, n_iter_no_change=10,
                 random_state=None, device="auto", dtype="float64", verbose=0, callback=None,
                 warm_start=False, n_threads="auto", momentum=0.9):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.prior_precision = prior_precision
        self.prior_structure = prior_structure
        self.evidence_search = evidence_search
        self.posterior = posterior
        self.inference = inference
        self.vi_method = vi_method
        self.mc_samples = mc_samples
        self.precision_rate = precision_rate
        self.initial_precision = initial_precision
        self.link_approximation = link_approximation
        self.link_samples = link_samples
        self.temperature = temperature
        self.residual_scale = residual_scale
        self.solver = solver
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.callback = callback
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.subset_of_weights = subset_of_weights
        self.module = module
        self.momentum = momentum

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network and build its posterior.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels of any type.
        sample_weight : array-like of shape (n_samples,), default=None
            Multiplies each example's loss and GGN term.

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight)

    def _encode_targets(self, y, dtype, device, weights=None):
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                "Classifier can't train when only one class is present; y has the single "
                f"class {self.classes_[0]!r}."
            )
        targets = self._code_tensor(encoder.transform(y), dtype, device)
        n_outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
        likelihood = Bernoulli() if len(self.classes_) == 2 else Categorical()
        self._targets = SameUnits()
        self._likelihood_hyperparameters = NoHyperparameters(likelihood)
        return targets, likelihood, n_outputs

    def _theta_names(self):
        return self._prior_theta_names()

    def _code_tensor(self, codes, dtype, device):
        """Class codes as the likelihood takes them (Bernoulli: 0/1 floats)."""
        if len(self.classes_) == 2:
            return to_tensor(codes, dtype, device)
        return torch.tensor(codes, dtype=torch.long, device=device)

    def _known_targets(self, y, device):
        y = column_or_1d(y, warn=True)
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not seen in fit: {unknown!r}.")
        return self._code_tensor(np.searchsorted(self.classes_, y), torch.float64, device)

    @scoped_threads
    def log_marginal_likelihood(self, prior_precision=None, *, theta=None,
                                eval_gradient=False):
        """Laplace-GGN log evidence at another prior precision, without retraining.

        ``log p(y|w*) + log N(w*|0, I/delta) + P/2 log 2 pi - 1/2 log|G + delta I|``
        with the trained ``w*`` and ``G``; one stored spectrum serves every
        ``delta`` at O(P) (or O(N K)) cost.

        Parameters
        ----------
        prior_precision : float or array-like of shape (1,), default=None
            ``delta``; defaults to the fitted one. A 1-D array is taken as
            ``theta``, as ``GaussianProcessRegressor.log_marginal_likelihood``
            takes its first argument.
        theta : array-like of shape (1,), default=None
            The log-hyperparameters ``[log delta]``.
        eval_gradient : bool, default=False
            With ``theta``, also return the gradient with respect to
            ``theta`` (by central differences of the closed form).

        Returns
        -------
        log_marginal_likelihood : float
        log_marginal_likelihood_gradient : ndarray of shape (1,)
            Only when ``eval_gradient`` is True.
        """
        check_is_fitted(self)
        theta = self._theta_argument(theta, prior_precision, eval_gradient)
        if theta is not None:
            return self._log_evidence_at_theta(theta, eval_gradient)
        return self._log_evidence_at(prior_precision)

    def _log_evidence_at(self, prior_precision, likelihood_values=None):
        delta, expanded = self._check_prior_precision(prior_precision)
        return finite_evidence(lambda: self._evidence(expanded), prior_precision=delta)

    @scoped_threads
    def decision_function(self, X):
        """Compute scores whose sign (binary) or argmax (multiclass) is :meth:`predict`.

        They rank like :meth:`predict_proba` with the estimator's
        ``link_approximation``: the raw logits for ``'plugin'``, the
        probit-moderated logits ``f / sqrt(1 + pi/8 T var)`` for ``'probit'``, and
        the log-odds (binary) or log-probabilities of the predictive for
        ``'meanfield'``, ``'bridge'`` and ``'mc'``. :meth:`predict_latent` gives the raw logits
        and their covariance.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The positive class's scores for two classes, else one column per
            class.
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        link = self._fitted("link_approximation")
        if link == "plugin":
            scores = torch.as_tensor(self._forward(X))
        else:
            f, var = self._predictive_latent(X)
            if link == "probit":
                scores = probit_scaled_logits(f, var)
            else:
                log_p = self._log_proba(f, var, link)
                scores = log_p[:, 1:] - log_p[:, :1] if f.shape[1] == 1 else log_p
        scores = to_numpy(scores)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    @scoped_threads
    def predict(self, X):
        """Class labels: the argmax of :meth:`predict_proba`.

        With ``link_approximation='probit'`` (or the others) the epistemic
        variance of each logit can change the multiclass decision, so the
        prediction follows the predictive probabilities, not the raw logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(1)
        return self.classes_[index]

    @scoped_threads
    def predict_proba(self, X, link_approximation=None):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        link_approximation : {'meanfield', 'probit', 'mc', 'bridge', 'plugin'}, default=None
            Overrides the estimator's ``link_approximation`` for this call.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return np.exp(self._predict_log_proba(X, link_approximation))

    def _predict_log_proba(self, X, link_approximation):
        check_is_fitted(self)
        link = (self._fitted("link_approximation") if link_approximation is None
                else link_approximation)
        if link not in LINKS:
            raise ValueError(f"link_approximation must be one of {LINKS}, got {link!r}.")
        X = self._validate_X(X)
        if link == "plugin":
            f = torch.as_tensor(self._forward(X))
            var = torch.zeros(f.shape + (f.shape[1],), dtype=f.dtype)
        else:
            f, var = self._predictive_latent(X)
        return to_numpy(self._log_proba(f, var, link))

    def _log_proba(self, f, var, link):
        # A fresh generator per call: repeated calls give the same Monte-Carlo estimate.
        generator = make_generator(self._fitted("random_state") if link == "mc" else 0)
        n_samples = self._fitted("link_samples")
        if link == "mc":
            # The draws, their softmax and its log: three (samples, rows, classes) arrays.
            k = max(f.shape[1], 2)
            check_memory(3 * n_samples * f.shape[0] * k * f.element_size(),
                         f"The Monte-Carlo link with link_samples={n_samples} for "
                         f"{f.shape[0]} rows", "lower link_samples or pass fewer rows at "
                         "a time", f.device)
        return self.likelihood_.log_class_probabilities(
            f, var, link, n_samples=n_samples, generator=generator)

    @scoped_threads
    def score_samples(self, X):
        """How confident the predictive is: the largest class probability.

        The score to threshold for out-of-distribution detection: lower means
        less like the training data. With the default tempered mean-field link
        it falls where the GP's latent variance grows, away from the data (on
        digits, uniform-noise images against test digits: AUROC 1.000, where
        the plug-in's confidence gave 0.720; ``benchmarks/bench_ood.py
        --splits 5``). A :class:`~sklearn.pipeline.Pipeline` passes it through, and
        :class:`~sklearn_dnn2gp.plotting.ConfidenceDisplay` plots it for data
        sets in and out of distribution. The predictive entropy is
        ``scipy.stats.entropy(predict_proba(X), axis=1)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            In ``[1 / n_classes, 1]``.
        """
        return np.exp(self._predict_log_proba(X, None).max(axis=1))

    @scoped_threads
    def predict_latent(self, X):
        """The GP posterior of the logits: mean ``f_{w*}(x)`` and covariance ``J Sigma J^T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        mean : ndarray of shape (n_samples, n_outputs)
            One output (the positive class's logit) for two classes.
        cov : ndarray of shape (n_samples, n_outputs, n_outputs)
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        f, var = self._latent(X)
        return to_numpy(f), to_numpy(var)

    @scoped_threads
    def predict_log_proba(self, X, link_approximation=None):
        """Logarithm of :meth:`predict_proba`, computed in log space.

        Finite even where a probability underflows to 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        link_approximation : str, default=None
            As for :meth:`predict_proba`.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return self._predict_log_proba(X, link_approximation)

    @scoped_threads
    def predict_uncertainty(self, X):
        """The Eq. 48 decomposition of the predictive covariance of the one-hot labels.

        ``Cov[y*] = Lambda* + Lambda* J* Sigma J*^T Lambda*`` with
        ``Lambda* = diag(p*) - p* p*^T``: the first term is aleatoric, the
        second epistemic, from the latent covariance of the predictive
        (``temperature_`` times that of the posterior). Their diagonals are
        returned, one column per class.
        The epistemic part is the first-order (delta-method) approximation of
        ``Var_f[p_k(f)]``; it is computed from the positive semi-definite part of
        the latent covariance, so it is never negative, and capped at 1/4, the
        largest variance a probability can have, where the linearisation
        overshoots (far from the data, or with a tiny ``prior_precision``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        epistemic : ndarray of shape (n_samples, n_classes)
        aleatoric : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        f, var = self._predictive_latent(X)
        epistemic, aleatoric = label_uncertainty(self.likelihood_.precision(f), var)
        return to_numpy(epistemic), to_numpy(aleatoric)
