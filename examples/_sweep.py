"""What the examples share: the summary table of a hyperparameter sweep (for the
two marginal-likelihood examples; its panel is a
:class:`~sklearn_dnn2gp.plotting.EvidenceDisplay`), and saving a figure for the
user guide (``DNN2GP_FIGURE``).

Not an example itself; the examples import it from this folder (a script's own
folder is on ``sys.path`` when it runs).
"""

from pathlib import Path

import numpy as np


def mean_se(values, axis=0):
    """Mean and standard error of the mean along ``axis``."""
    values = np.asarray(values)
    return values.mean(axis), values.std(axis, ddof=1) / np.sqrt(values.shape[axis])


def summarise(name, grid, results, groups, units):
    """Print the table of one sweep and return its summary.

    Parameters
    ----------
    name : str
        The swept hyperparameter, as the table's first column is headed.
    grid : sequence of float
        Its values.
    results : ndarray of shape (n_values, n_groups, 3)
        Per value and per dataset (or split): the training log marginal
        likelihood, the training MSE and the test MSE.
    groups : str
        What the second axis of ``results`` is, in the plural ('splits').
    units : str
        The units the MSEs are in, for the reader of the table.

    Returns
    -------
    summary : dict
        Mean and standard error of each column, and the indices of the value
        of highest mean evidence and of lowest mean test MSE.
    """
    lml, train_mse, test_mse = (results[..., k] for k in range(3))
    lml_m, lml_s = mean_se(lml, axis=1)
    tr_m, tr_s = mean_se(train_mse, axis=1)
    te_m, te_s = mean_se(test_mse, axis=1)
    by_evidence, by_test = int(np.argmax(lml_m)), int(np.argmin(te_m))
    n_groups = results.shape[1]
    print(f"\n{name} sweep ({n_groups} {groups}): mean +- standard error")
    print(f"MSE in {units}")
    print(f"{name:>10} {'train log marglik':>22} {'train MSE':>17} {'test MSE':>17}")
    for i, value in enumerate(grid):
        marks = [mark for mark, hit in (("<- evidence", i == by_evidence),
                                        ("<- test", i == by_test)) if hit]
        print(f"{value:>10.4g} {lml_m[i]:>12.2f} +- {lml_s[i]:<6.2f} "
              f"{tr_m[i]:>8.4f} +- {tr_s[i]:.4f} {te_m[i]:>8.4f} +- {te_s[i]:.4f}  "
              + " ".join(marks))
    # Selecting per dataset, as EvidenceSearchCV on that training set would.
    per_group = test_mse[np.argmax(lml, axis=0), np.arange(n_groups)]
    pg_m, pg_s = mean_se(per_group)
    gap = te_m[by_evidence] - te_m[by_test]
    within = gap <= te_s[by_test]
    print(f"evidence choice {grid[by_evidence]:.4g}: test MSE {te_m[by_evidence]:.4f}; "
          f"best grid value {grid[by_test]:.4g}: {te_m[by_test]:.4f} +- {te_s[by_test]:.4f} "
          f"-> gap {gap:.4f} {'within' if within else 'NOT within'} one standard error")
    print(f"evidence selection per {groups[:-1]}: test MSE {pg_m:.4f} +- {pg_s:.4f}")
    return {"lml": (lml_m, lml_s), "train": (tr_m, tr_s), "test": (te_m, te_s),
            "by_evidence": by_evidence, "by_test": by_test}


def save_figure(figure, path, dpi):
    """Save ``figure`` as a PNG of 256 colours (a third of the size for the same
    picture: the user guide shows them), close it and say where it is."""
    import matplotlib.pyplot as plt
    from PIL import Image  # matplotlib's own dependency

    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"figure saved to {Path(path).resolve()}")
