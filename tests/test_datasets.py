import numpy as np
import pytest

from sklearn_dnn2gp.datasets import (
    default_data_dir,
    load_snelson,
    load_wine_split,
    make_gap_regression,
)


def test_gap_regression_leaves_the_gap_empty():
    X, y = make_gap_regression(n_samples=200, gap=(-1.0, 1.0), random_state=0)
    assert X.shape == (200, 1) and y.shape == (200,)
    assert not np.any((X > -1) & (X < 1))
    np.testing.assert_array_equal(X, make_gap_regression(n_samples=200, random_state=0)[0])


def test_reference_data_loaders():
    if not (default_data_dir() / "winequality-red.csv").exists():
        pytest.skip(f"reference data not found under {default_data_dir()}")
    X_train, y_train, X_test, y_test, y_std = load_wine_split(3)
    assert X_train.shape == (1439, 11) and X_test.shape == (160, 11)
    np.testing.assert_allclose(X_train.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(X_train.std(0), 1, rtol=1e-10)
    np.testing.assert_allclose(y_train.std(), 1, rtol=1e-10)
    assert 0.7 < y_std < 0.9
    X, y = load_snelson()
    assert X.shape == (148, 1) and not np.any((X >= 1.5) & (X <= 3))
    assert load_snelson(in_between=False)[0].shape == (200, 1)
