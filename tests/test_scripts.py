"""The demo, the examples and the benchmarks run and print what they promise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sklearn_dnn2gp.__main__ import main as demo
from sklearn_dnn2gp.datasets import default_data_dir

ROOT = Path(__file__).resolve().parents[1]


def test_demo_prints_gap_uncertainty_and_evidence(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "demo.png"
    demo(["--plot", str(plot)])
    out = capsys.readouterr().out
    assert "log marginal likelihood (training set)" in out
    line = next(x for x in out.splitlines() if x.startswith("mean predictive std"))
    on_data, in_gap = (float(part.split(":")[-1]) for part in line.split(";"))
    assert in_gap > 2 * on_data
    assert plot.stat().st_size > 10_000
    # A newcomer should not have to hunt for the figure or guess the run time.
    assert f"plot saved to {plot.resolve()}" in out
    assert "time taken:" in out


def _run(script, *args):
    # The package need not be installed: the scripts import it from the checkout.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", ["examples/marglik_wine.py",
                                    "examples/marglik_synthetic.py"])
def test_examples_quick_runs(script, tmp_path):
    if not default_data_dir().exists():
        pytest.skip(f"reference data not found under {default_data_dir()}")
    out = _run(script, "--quick", "--output", str(tmp_path / "fig.png"), "--n-jobs", "1")
    assert "test MSE" in out or "test mse" in out.lower()
