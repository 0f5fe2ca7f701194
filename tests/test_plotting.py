"""The Displays draw what the estimators compute, on new or given axes (Agg backend)."""

import sys

import numpy as np
import pytest
from scipy.stats import entropy
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_blobs, make_moons
from sklearn.exceptions import NotFittedError
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from sklearn_dnn2gp import EvidenceSearchCV
from sklearn_dnn2gp.plotting import (
    ConfidenceDisplay,
    EvidenceDisplay,
    KernelDisplay,
    PredictiveDisplay,
    UncertaintyDisplay,
)

from ._helpers import FixedClassifier, FixedRegressor, gap_data

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# What is drawn is checked against the same fitted model, so any weights do.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def regressor():
    X, y = gap_data(30)
    est = FixedRegressor(hidden_layer_sizes=(5,), noise_std=0.1, max_iter=60, random_state=0)
    return est.fit(X, y), X, y


@pytest.fixture(scope="module")
def binary():
    X, y = make_moons(n_samples=40, noise=0.2, random_state=0)
    est = FixedClassifier(hidden_layer_sizes=(5,), max_iter=60, random_state=0)
    return est.fit(X, y), X, y


@pytest.fixture(scope="module")
def multiclass():
    X, y = make_blobs(n_samples=30, centers=3, random_state=0)
    est = FixedClassifier(hidden_layer_sizes=(4,), max_iter=60, random_state=0)
    return est.fit(X, y), X, y


def _band(collection, x):
    """Lower and upper edge of a fill_between band at each of ``x``."""
    vertices = np.concatenate([path.vertices for path in collection.get_paths()])
    at = [vertices[vertices[:, 0] == value, 1] for value in x]
    return np.array([y.min() for y in at]), np.array([y.max() for y in at])


def test_predictive_display(regressor):
    est, X, y = regressor
    reference = GaussianProcessRegressor(RBF(), alpha=0.01).fit(X, y)
    x = np.linspace(-6, 6, 25)
    display = PredictiveDisplay.from_estimator(est, X, y, x=x, reference=reference, n_std=2)
    mean, std = est.predict(x[:, None], return_std=True)
    epistemic, _ = est.predict_uncertainty(x[:, None])
    np.testing.assert_allclose(display.line_.get_ydata(), mean)
    for band, half_width in ((display.band_, 2 * std),
                             (display.epistemic_band_, 2 * np.sqrt(epistemic))):
        lower, upper = _band(band, x)
        np.testing.assert_allclose(lower, mean - half_width, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(upper, mean + half_width, rtol=1e-12, atol=1e-12)
    ref_mean, ref_std = reference.predict(x[:, None], return_std=True)
    np.testing.assert_allclose(display.reference_line_.get_ydata(), ref_mean)
    np.testing.assert_allclose(display.reference_band_[1].get_ydata(), ref_mean + 2 * ref_std)
    # The GP's std leaves out its alpha: noise_std adds it, the GP's std is then epistemic.
    gp = PredictiveDisplay.from_estimator(reference, X, y, x=x, noise_std=0.1)
    lower, _ = _band(gp.band_, x)
    np.testing.assert_allclose(lower, ref_mean - 2 * np.sqrt(ref_std**2 + 0.01), rtol=1e-12)
    lower, _ = _band(gp.epistemic_band_, x)
    np.testing.assert_allclose(lower, ref_mean - 2 * ref_std, rtol=1e-12)
    assert display.scatter_.get_offsets().shape == (len(X), 2)
    labels = [t.get_text() for t in display.ax_.get_legend().get_texts()]
    assert "GaussianProcessRegressor mean" in labels and "DNN2GPRegressor mean" in labels

    # plot(ax=...) draws on the given axes; mean='gp' is passed through.
    fig, ax = plt.subplots()
    again = PredictiveDisplay.from_estimator(est, X, x=x, mean="gp", ax=ax, legend=False)
    assert again.ax_ is ax and again.figure_ is fig and again.scatter_ is None
    np.testing.assert_allclose(again.line_.get_ydata(), est.predict(x[:, None], mean="gp"))
    # Precomputed curves, e.g. Monte Carlo, through the constructor.
    plain = PredictiveDisplay(x, mean, std, estimator_name="MC").plot(ax=ax, color="C3")
    assert plain.epistemic_band_ is None and plain.line_.get_label() == "MC mean"
    with pytest.raises(ValueError, match="1-D inputs"):
        PredictiveDisplay.from_estimator(est, np.hstack([X, X]))


def test_kernel_display_groups_by_class(multiclass):
    est, X, y = multiclass
    display = KernelDisplay.from_estimator(est, X, y)
    order = np.argsort(y, kind="stable")
    expected = est.kernel(X)[np.ix_(order, order)] / est.prior_precision_
    np.testing.assert_allclose(display.image_.get_array(), expected, rtol=1e-12)
    low, high = display.image_.get_clim()
    assert low == -high and high == pytest.approx(np.abs(expected).max())
    assert len(display.group_lines_) == 2 * 2  # between three groups, on both axes
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == ["0", "1", "2"]
    assert display.colorbar_ is not None

    fig, ax = plt.subplots()
    normalised = KernelDisplay.from_estimator(est, X, mode=1, normalize=True, ax=ax,
                                              colorbar=False)
    assert normalised.ax_ is ax and normalised.colorbar_ is None
    np.testing.assert_allclose(np.diag(normalised.image_.get_array()), 1.0)
    # Without y a classifier's rows are grouped by its predictions.
    np.testing.assert_array_equal(normalised.order_,
                                  np.argsort(est.predict(X), kind="stable"))


def test_uncertainty_display_on_a_grid(binary, multiclass):
    est, X, y = binary
    display = UncertaintyDisplay.from_estimator(est, X, y, grid_resolution=7)
    xx0, xx1 = display.grid
    points = np.column_stack([xx0.ravel(), xx1.ravel()])
    epistemic, aleatoric = est.predict_uncertainty(points)
    np.testing.assert_allclose(display.epistemic, epistemic[:, 1].reshape(xx0.shape))
    np.testing.assert_allclose(display.aleatoric, aleatoric[:, 1].reshape(xx0.shape))
    np.testing.assert_allclose(display.mean, est.predict_proba(points)[:, 1].reshape(xx0.shape))
    assert len(display.images_) == 3 and len(display.scatters_) == 3
    assert [ax.get_title() for ax in display.ax_] == ["mean", "epistemic", "aleatoric"]

    # Given axes are used; a multiclass map sums the classes (the covariance's trace).
    est, X, y = multiclass
    fig, axes = plt.subplots(1, 2)
    display = UncertaintyDisplay.from_estimator(est, X, y, grid_resolution=5, mean=False,
                                                ax=axes)
    assert display.figure_ is fig and list(display.ax_) == list(axes)
    points = np.column_stack([g.ravel() for g in display.grid])
    epistemic, _ = est.predict_uncertainty(points)
    np.testing.assert_allclose(display.epistemic.ravel(), epistemic.sum(1))
    with pytest.raises(ValueError, match="draws on 2 axes, got 3"):
        display.plot(ax=plt.subplots(1, 3)[1])
    with pytest.raises(ValueError, match="target must be an index"):
        UncertaintyDisplay.from_estimator(est, X, target=3, grid_resolution=5)


def test_uncertainty_display_per_class(multiclass, regressor):
    est, X, y = multiclass
    display = UncertaintyDisplay.from_estimator(est, X[:9], y[:9], kind="per_class")
    order = np.argsort(y[:9], kind="stable")
    epistemic, aleatoric = est.predict_uncertainty(X[:9])
    images = [image.get_array() for image in display.images_]
    np.testing.assert_allclose(images[0], est.predict_proba(X[:9])[order])
    np.testing.assert_allclose(images[1], epistemic[order])
    np.testing.assert_allclose(images[2], aleatoric[order])
    assert [t.get_text() for t in display.ax_[1].get_xticklabels()] == ["0", "1", "2"]
    assert display.images_[1].get_clim() == (0.0, epistemic.max())
    fig, axes = plt.subplots(1, 3)
    capped = display.plot(ax=axes, vmax=0.25)
    assert [image.get_clim()[1] for image in capped.images_[1:]] == [0.25, 0.25]
    assert capped.ax_[0] is axes[0]

    reg, X, _ = regressor
    display = UncertaintyDisplay.from_estimator(reg, X, kind="per_class", mean=False)
    assert display.images_[1].get_array().shape == (len(X), 1)


def test_evidence_display_from_search_and_table():
    X, y = gap_data(20)
    base = FixedRegressor(hidden_layer_sizes=(2,), activation="relu", noise_std=0.1,
                           max_iter=50, random_state=0)
    grid = {"prior_precision": [10.0, 0.1, 1.0]}
    search = EvidenceSearchCV(base, grid).fit(X, y)
    test_error = np.array([0.3, 0.2, 0.1])  # in the order of results_
    display = EvidenceDisplay.from_search(search, test_error=test_error, error_name="MSE")
    x, lml = display.evidence_line_.lines[0].get_data()
    np.testing.assert_array_equal(x, [0.1, 1.0, 10.0])
    np.testing.assert_array_equal(lml, search.results_["log_marginal_likelihood"][[1, 2, 0]])
    np.testing.assert_array_equal(display.test_line_.lines[0].get_ydata(), [0.2, 0.1, 0.3])
    assert display.train_line_ is None and display.error_ax_ is not None
    assert display.best_evidence_line_.get_xdata()[0] == x[np.argmax(lml)]
    assert display.best_test_line_.get_xdata()[0] == 1.0
    assert display.ax_.get_xscale() == "log" and display.error_ax_.get_ylabel() == "MSE"
    assert len(display.handles_) == 4

    # A plain table, one row per fit: repeats become means with standard errors.
    table = {"width": [(2,), (2,), (8,), (8,), (4,), (4,)],
             "log_marginal_likelihood": [-3.0, -5.0, -9.0, -7.0, -1.0, -2.0],
             "train": [0.5, 0.7, 0.1, 0.1, 0.3, 0.3]}
    fig, ax = plt.subplots()
    display = EvidenceDisplay.from_table(table, "width", train_error="train", ax=ax,
                                         xscale="log2")
    assert display.ax_ is ax and display.best_test_line_ is None
    x, lml = display.evidence_line_.lines[0].get_data()
    np.testing.assert_array_equal(x, [2, 4, 8])
    np.testing.assert_allclose(lml, [-4.0, -1.5, -8.0])
    bar = display.evidence_line_.lines[2][0].get_segments()[0][:, 1]
    np.testing.assert_allclose(bar, [-5.0, -3.0])  # the standard error of (-3, -5) is 1
    assert display.best_evidence_line_.get_xdata()[0] == 4
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "8"]


def test_evidence_display_from_search_needs_one_parameter():
    X, y = gap_data(16)
    base = FixedRegressor(hidden_layer_sizes=(2,), activation="relu", max_iter=20,
                           random_state=0)
    grid = {"prior_precision": [0.1, 1.0], "noise_std": [0.1, 1.0]}
    search = EvidenceSearchCV(base, grid).fit(X, y)
    with pytest.raises(ValueError, match="Several hyperparameters vary"):
        EvidenceDisplay.from_search(search)
    with pytest.raises(ValueError, match="noise_std also vary; give their values with fixed="):
        EvidenceDisplay.from_search(search, "prior_precision")
    display = EvidenceDisplay.from_search(search, "prior_precision", fixed={"noise_std": 0.1})
    lml = display.evidence_line_.lines[0].get_ydata()
    results = search.results_
    chosen = [i for i, p in enumerate(results["params"]) if p["noise_std"] == 0.1]
    np.testing.assert_array_equal(np.sort(lml), np.sort(results["log_marginal_likelihood"][chosen]))


def test_displays_without_matplotlib(monkeypatch, regressor):
    # None in sys.modules makes the import fail, as if matplotlib were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    est, X, y = regressor
    message = r"needs matplotlib.*pip install 'sklearn-dnn2gp\[plot\]'"
    for draw in (lambda: PredictiveDisplay.from_estimator(est, X, y),
                 lambda: KernelDisplay(np.eye(2)).plot(),
                 lambda: UncertaintyDisplay(np.ones((2, 2)), np.ones((2, 2))).plot(),
                 lambda: EvidenceDisplay([1, 2], [0, 1]).plot()):
        with pytest.raises(ImportError, match=message):
            draw()


class _Stub(ClassifierMixin, BaseEstimator):
    """Sure of class 0 where the first feature is positive, uniform over three classes
    elsewhere: the right direction of each confidence measure is known."""

    def fit(self, X, y=None):
        self.classes_ = np.arange(3)
        return self

    def predict_proba(self, X):
        X = np.asarray(X, dtype=float)
        sure = X[:, 0] > 0
        proba = np.full((len(X), 3), 1 / 3)
        proba[sure] = [0.98, 0.01, 0.01]
        return proba


def test_confidence_display_any_classifier():
    # A plain scikit-learn classifier in a Pipeline: only predict_proba is used.
    X, y = make_blobs(n_samples=60, centers=3, random_state=0)
    clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    rng = np.random.RandomState(0)
    X_out = {"noise": rng.uniform(-10, 10, size=(40, 2)), "far": X[:20] + 30.0}
    display = ConfidenceDisplay.from_estimator(clf, X, X_out)
    confidence_in = clf.predict_proba(X).max(1)
    for name, inputs in X_out.items():
        confidence_out = clf.predict_proba(inputs).max(1)
        truth = np.r_[np.ones(len(X)), np.zeros(len(inputs))]
        expected = roc_auc_score(truth, np.r_[confidence_in, confidence_out])
        assert display.auroc_[name] == pytest.approx(expected, abs=1e-12)
        # Each line is the set's empirical CDF: its steps are the sorted scores.
        x, ecdf = display.lines_[name].get_data()
        np.testing.assert_allclose(x[1:-1], np.sort(confidence_out))
        np.testing.assert_allclose(ecdf[1:-1], np.arange(1, len(inputs) + 1) / len(inputs))
        assert ecdf[0] == 0 and ecdf[-1] == 1
    np.testing.assert_allclose(display.in_line_.get_xdata()[1:-1], np.sort(confidence_in))
    assert list(display.lines_) == list(display.auroc_) == ["noise", "far"]
    labels = [t.get_text() for t in display.ax_.get_legend().get_texts()]
    assert labels == ["in-distribution",
                      f"noise (AUROC {display.auroc_['noise']:.3f})",
                      f"far (AUROC {display.auroc_['far']:.3f})"]
    assert display.ax_.get_title() == "Pipeline" and "largest" in display.ax_.get_xlabel()

    # Given axes and a name; precomputed scores give the same AUROCs.
    fig, ax = plt.subplots()
    named = ConfidenceDisplay.from_estimator(clf, X, X_out, ax=ax, name="LR", legend=False)
    assert named.ax_ is ax and named.figure_ is fig and ax.get_title() == "LR"
    assert ax.get_legend() is None
    scores_out = {name: clf.predict_proba(inputs).max(1) for name, inputs in X_out.items()}
    again = ConfidenceDisplay.from_predictions(confidence_in, scores_out)
    assert again.auroc_ == display.auroc_


def test_confidence_display_entropy_direction():
    # Confident in distribution, uniform out of it: higher confidence in distribution by
    # both measures, so a perfect separation (AUROC 1), not its reverse (0).
    est = _Stub().fit(None)
    rng = np.random.RandomState(0)
    X = rng.uniform(0.5, 1.0, size=(30, 2))
    X_out = {"uniform": -X}
    for measure in ("entropy", "max_proba"):
        display = ConfidenceDisplay.from_estimator(est, X, X_out, measure=measure)
        assert display.auroc_ == {"uniform": 1.0}
    # The entropy's score is its negative, natural log: -log 3 for the uniform rows.
    display = ConfidenceDisplay.from_estimator(est, X, X_out, measure="entropy")
    assert "negative predictive entropy" in display.ax_.get_xlabel()
    np.testing.assert_allclose(display.lines_["uniform"].get_xdata()[1:-1], -np.log(3))
    np.testing.assert_allclose(display.in_line_.get_xdata()[1:-1],
                               -entropy(est.predict_proba(X), axis=1))


def test_confidence_display_dnn2gp(binary):
    est, X, _ = binary
    far = np.random.RandomState(0).uniform(-1, 1, size=(25, 2)) * 10
    display = ConfidenceDisplay.from_estimator(est, X, {"far": far}, measure="entropy")
    scores = [-entropy(est.predict_proba(data), axis=1) for data in (X, far)]
    expected = roc_auc_score(np.r_[np.ones(len(X)), np.zeros(len(far))], np.concatenate(scores))
    assert display.auroc_["far"] == pytest.approx(expected, abs=1e-12)
    assert display.ax_.get_title() == "DNN2GPClassifier"


def test_confidence_display_errors(binary):
    est, X, y = binary
    X_out = {"far": X + 10}
    with pytest.raises(ValueError, match=r"measure must be one of \['entropy', 'max_proba'\]"):
        ConfidenceDisplay.from_estimator(est, X, X_out, measure="margin")
    with pytest.raises(ValueError, match="measure must be one of"):
        ConfidenceDisplay.from_predictions([0.9], {"a": [0.5]}, measure="proba")
    with pytest.raises(TypeError, match="X_out must be a dict"):
        ConfidenceDisplay.from_estimator(est, X, [X + 10])
    with pytest.raises(ValueError, match="X_out must hold at least one"):
        ConfidenceDisplay.from_estimator(est, X, {})
    with pytest.raises(TypeError, match="scores_out must be a dict"):
        ConfidenceDisplay.from_predictions([0.9], [0.5])
    with pytest.raises(NotFittedError):
        ConfidenceDisplay.from_estimator(LogisticRegression(), X, X_out)
    with pytest.raises(NotFittedError):
        ConfidenceDisplay.from_estimator(clone(est), X, X_out)
    with pytest.raises(AttributeError, match="needs a classifier with predict_proba; "
                                             "LinearSVC has none"):
        ConfidenceDisplay.from_estimator(LinearSVC().fit(X, y), X, X_out)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        ConfidenceDisplay.from_predictions([0.9], {"a": [0.5]}, ax="axes")


def test_confidence_display_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"ConfidenceDisplay needs matplotlib"):
        ConfidenceDisplay([0.9], {"a": [0.5]}).plot()
