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
