"""The groups' outputs gathered, candidate by candidate, into ``results_``."""

import warnings

import numpy as np
from scipy.stats import rankdata
from sklearn.exceptions import FitFailedWarning


def _gather(candidates, groups, outputs, error_score, closed_form):
    """Collect the outputs of :func:`~._grid._fit_group`, one per group.

    Returns ``(results, networks, n_networks)``: the ``results_`` table (with
    ``closed_form_log_marginal_likelihood`` when ``closed_form``), the fitted
    networks as good as the best so far by candidate index, and how many
    networks were trained. Raises when every fit failed and warns when some
    did.
    """
    n = len(candidates)
    scores, closed_form_scores = np.full(n, np.nan), np.full(n, np.nan)
    fit_time, score_time = np.zeros(n), np.zeros(n)
    trained = np.zeros(n, dtype=bool)
    networks, best_value, last_error, n_networks, n_failed = {}, -np.inf, None, 0, 0
    for group, out in zip(groups, outputs):
        idx = np.asarray(group.indices)
        trained[idx] = out["trained"]
        scores[idx], fit_time[idx] = out["exact"], out["fit_time"]
        closed_form_scores[idx], score_time[idx] = out["closed_form"], out["score_time"]
        n_networks += out["n_trained"]
        n_failed += out["n_failed"]
        last_error = out["error"] if out["error"] is not None else last_error
        # Only networks as good as the best so far are kept, so memory holds one
        # (more only on a tie, which the first index wins).
        value = out["exact"][out["best"]]
        if out["network"] is not None and value >= best_value:
            if value > best_value:
                networks, best_value = {}, value
            networks[int(idx[out["best"]])] = out["network"]

    if last_error is not None:
        if n_failed >= n_networks:
            raise ValueError(
                f"All {n_networks} fits failed; the last error was:\n{last_error}")
        warnings.warn(
            f"{n_failed} of {n_networks} fits failed and were scored "
            f"error_score={error_score}; the last error was:\n{last_error}",
            FitFailedWarning,
        )
    results = _table(candidates, scores, fit_time, score_time, trained)
    if closed_form:
        results["closed_form_log_marginal_likelihood"] = closed_form_scores
    return results, networks, n_networks


def _table(candidates, scores, fit_time, score_time, trained):
    """``results_`` in the layout of ``GridSearchCV.cv_results_``."""
    n = len(candidates)
    results = {"params": candidates}
    names = sorted({name for params in candidates for name in params})
    for name in names:
        column = np.ma.MaskedArray(np.empty(n, dtype=object), mask=True)
        for i, params in enumerate(candidates):
            if name in params:
                column[i] = params[name]
        results[f"param_{name}"] = column
    # NaN (failed) candidates rank last, as in scikit-learn's searches.
    ranked = np.where(np.isnan(scores), -np.inf, scores)
    results["log_marginal_likelihood"] = scores
    results["rank_log_marginal_likelihood"] = rankdata(
        -ranked, method="min").astype(np.int32)
    results["fit_time"] = fit_time
    results["score_time"] = score_time
    results["trained"] = trained
    return results
