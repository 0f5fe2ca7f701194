"""The demo, the examples and the benchmarks run and print what they promise."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_dnn2gp.__main__ import main as demo
from sklearn_dnn2gp.datasets import default_data_dir

ROOT = Path(__file__).resolve().parents[1]


def test_demo_prints_gap_uncertainty_and_evidence(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "demo.png"
    # The estimators pick their thread count per call but must hand the caller's back.
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        demo(["--plot", str(plot)])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    out = capsys.readouterr().out
    assert "log marginal likelihood (training set)" in out
    line = next(x for x in out.splitlines() if x.startswith("mean predictive std"))
    on_data, in_gap = (float(part.split(":")[-1]) for part in line.split(";"))
    assert in_gap > 2 * on_data
    assert plot.stat().st_size > 10_000
    # A newcomer should not have to hunt for the figure or guess the run time.
    assert f"plot saved to {plot.resolve()}" in out
    assert "time taken:" in out


def _run(script, *args, env=None):
    # The package need not be installed: the scripts import it from the checkout.
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_gallery_marglik_wine_short_run(tmp_path):
    if not default_data_dir().exists():
        pytest.skip(f"reference data not found under {default_data_dir()}")
    out = _gallery_run("marglik_wine", tmp_path)
    assert "30 fits" in out and "test MSE" in out
    # MSEs of standardised and of raw targets differ by y_std**2: the units must be said.
    assert "MSE in original quality units" in out


@pytest.mark.slow
def test_gallery_cnn_digits_short_run(tmp_path):
    out = _gallery_run("cnn_digits", tmp_path)
    assert "SmallCNN" in out and "meanfield" in out and "kernel: mean within a class" in out
    accuracy = float(out.split("test accuracy ")[1].split(",")[0])
    assert accuracy > 0.8


def _example(name):
    # The examples are scripts, not part of the package: load one from its file.
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gallery_run(name, tmp_path):
    """Run a gallery script as a user would, saving its figure; its output."""
    pytest.importorskip("matplotlib")
    figure = tmp_path / f"{name}.png"
    out = _run(f"examples/plot_{name}.py", env={"DNN2GP_FIGURE": str(figure),
                                                "MPLBACKEND": "Agg"})
    assert figure.stat().st_size > 10_000 and "time taken:" in out
    return out


def _numbers(line):
    return [float(word) for word in line.replace(",", " ").split() if _is_number(word)]


def _is_number(word):
    try:
        float(word)
    except ValueError:
        return False
    return True


@pytest.mark.slow
def test_gallery_toy_classification_gp_view(tmp_path):
    out = _gallery_run("toy_classification_gp_view", tmp_path)
    line = next(x for x in out.splitlines() if x.startswith("GP view on an"))
    # Theorem 1: the GP's std is the logit's posterior std, to round-off.
    assert _numbers(line.split("std")[-1])[-1] < 1e-6
    assert "kernel J J^T / delta: mean" in out


@pytest.mark.slow
def test_gallery_snelson_in_between_short_run(tmp_path):
    if not (default_data_dir() / "snelson_train_inputs.txt").exists():
        pytest.skip(f"Snelson data not found under {default_data_dir()}")
    out = _gallery_run("snelson_in_between", tmp_path)
    rows = {line[:20].strip(): _numbers(line[20:]) for line in out.splitlines()
            if line.startswith(("DNN2GP-", "MC diagonal", "GP-RBF")) and "(" not in line}
    assert set(rows) == {"DNN2GP-Laplace", "DNN2GP-VI", "MC diagonal Laplace", "GP-RBF"}
    gap, data = rows["DNN2GP-Laplace"][:2]
    assert gap > data


@pytest.mark.slow
def test_gallery_digits_kernel(tmp_path):
    out = _gallery_run("digits_kernel", tmp_path)
    rows = [line for line in out.splitlines() if line[:5].strip().isdigit() and "|" in line]
    assert [int(row.split("|")[0]) for row in rows] == list(range(10))
    assert "The 0/1 network calls" in out and "within / across" in out


def test_sweep_table(capsys):
    """The examples' table marks the right rows (the panel is an EvidenceDisplay,
    tested with the plotting module)."""
    sweep = _example("_sweep")
    grid = [1, 2, 4, 8, 16]
    rng = np.random.RandomState(0)
    results = rng.uniform(0.3, 0.5, size=(len(grid), 3, 3))
    results[..., 0] = np.array([-30.0, -10.0, -20.0, -40.0, -50.0])[:, None] + rng.rand(5, 3)
    results[3, :, 2] = 0.1  # lowest test MSE at width 8
    summary = sweep.summarise("width", grid, results, "splits", "units of y, squared")
    lines = capsys.readouterr().out.splitlines()
    assert "MSE in units of y, squared" in lines
    rows = {int(line.split()[0]): line for line in lines if line[:10].strip().isdigit()}
    assert rows[2].endswith("<- evidence") and rows[8].endswith("<- test")
    assert (summary["by_evidence"], summary["by_test"]) == (1, 3)


@pytest.mark.slow
@pytest.mark.parametrize("script, expected", [
    ("benchmarks/bench_scaling.py", "last layer"),
    ("benchmarks/bench_large_kron.py", "MAP plug-in"),
    ("benchmarks/bench_laplace_torch.py", "kron, matched"),
    ("benchmarks/bench_ood.py", "chosen T"),
    ("benchmarks/bench_evidence_structures.py", "Each evidence's maximiser"),
])
def test_benchmarks_quick_runs(script, expected):
    if script.endswith("bench_laplace_torch.py"):
        pytest.importorskip("laplace", reason="laplace-torch (the bench extra) is not installed")
    assert expected in _run(script, "--quick")


@pytest.mark.slow
def test_vi_examples_print_their_numbers(tmp_path):
    if not default_data_dir().exists():
        pytest.skip(f"reference data not found under {default_data_dir()}")
    pytest.importorskip("matplotlib")
    out = _gallery_run("in_between_vi", tmp_path)
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines()
            if line.startswith(("Laplace", "VI "))}
    assert set(rows) == {"Laplace (delta 0.1)", "VI diag (delta 1)", "VI full (delta 1)"}
    # The full posteriors' smallest std in the gap exceeds their largest on the data.
    assert float(rows["Laplace (delta 0.1)"][-1]) > 1
    assert float(rows["VI full (delta 1)"][-1]) > 1

    out = _gallery_run("marglik_synthetic", tmp_path)
    assert "laplace: 15 fits" in out and "vi: 15 fits" in out
    assert "the evidence's choice of delta and its test MSE:" in out


@pytest.mark.slow
def test_gallery_digits_ood_prints_its_aurocs_and_saves_the_figure(tmp_path):
    out = _gallery_run("digits_ood", tmp_path)
    rows = {line[:22].strip(): _numbers(line[22:]) for line in out.splitlines()
            if line.startswith(" ") and len(_numbers(line[22:])) == 2}
    assert set(rows) == {"uniform noise", "shuffled digits", "shifted digits (x10)"}
    # DNN2GP's column: its uncertainty tells noise and shuffled digits apart.
    assert rows["uniform noise"][0] > 0.9 and rows["shuffled digits"][0] > 0.9
    assert all(0 <= v <= 1 for pair in rows.values() for v in pair)
