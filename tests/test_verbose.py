"""The progress report of ``verbose=1`` (``_verbose.py``)."""

import pytest

from ._helpers import FixedRegressor, gap_data


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning",
                            "ignore:The training residuals:UserWarning")
def test_verbose_reports_phases_in_a_few_lines(capsys):
    X, y = gap_data(40)
    FixedRegressor(hidden_layer_sizes=(5,), noise_std=0.1, verbose=1, random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 30
    text = "\n".join(lines)
    for phase in ["training (L-BFGS", "curvature and full posterior", "log marginal likelihood"]:
        assert phase in text
    assert "done in" in text
    FixedRegressor(hidden_layer_sizes=(5,), random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_verbose_ends_with_one_summary_line(capsys):
    X, y = gap_data(40)
    reg = FixedRegressor(hidden_layer_sizes=(5,), prior_precision="auto", noise_std="auto",
                         normalize_y=True, max_iter=200, verbose=1, random_state=0).fit(X, y)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("[DNN2GPRegressor] fitted in ")
    assert f"{len(reg.evidence_trace_)} trainings (retrain evidence search)" in last
    assert reg.evidence_search_ == "retrain"
    assert "prior_precision=" in last and "noise_std=" in last
    assert f"log marginal likelihood {reg.log_marginal_likelihood_:.6g}" in last
    # Refitted at fixed hyperparameters: one training, and no stale trace.
    reg.set_params(prior_precision=1.0, noise_std=0.1).fit(X, y)
    last = capsys.readouterr().out.splitlines()[-1]
    assert "; 1 training;" in last and not hasattr(reg, "evidence_trace_")
    assert reg.evidence_search_ is None


def test_progress_prints_at_least_every_interval(capsys):
    from sklearn_dnn2gp._verbose import Progress

    # 1,000 iterations make a line every 50 at verbose=1; an interval of 0 s prints
    # every one (a slow training's lines come at least every PROGRESS_SECONDS).
    progress = Progress(1, "Adam", 1000, "epoch", interval=0.0)
    for i in range(1, 8):
        progress.update(i, float(i))
    assert len(capsys.readouterr().out.splitlines()) == 7
    progress = Progress(1, "Adam", 1000, "epoch", interval=1e9)
    for i in range(1, 8):
        progress.update(i, float(i))
    assert len(capsys.readouterr().out.splitlines()) == 1
