from setuptools import find_packages, setup

setup(
    name="sklearn-dnn2gp",
    version="0.1.0",
    description="Deep networks as Gaussian processes (DNN2GP) as scikit-learn estimators",
    long_description=open("README.rst").read(),
    long_description_content_type="text/x-rst",
    packages=find_packages(include=["sklearn_dnn2gp", "sklearn_dnn2gp.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch==2.13.0",
        "scikit-learn>=1.6",
        "numpy>=1.24",
        "scipy>=1.10",
        "joblib>=1.3",
    ],
    extras_require={
        "plot": ["matplotlib>=3.7"],
        "test": ["pytest>=7", "pandas>=2.0", "matplotlib>=3.7", "hypothesis>=6"],
        # For the Dask test of the evidence search (a slow test).
        "dask": ["dask[distributed]>=2024.1"],
        # The documentation site: python -m sphinx -W -b html docs docs/_build/html
        "docs": ["sphinx>=7", "numpydoc>=1.6", "sphinx-gallery>=0.15",
                 "pydata-sphinx-theme>=0.15", "matplotlib>=3.7"],
        # Only for benchmarks/bench_laplace_torch.py (a comparison, not a dependency).
        "bench": ["laplace-torch>=0.3"],
    },
    license="BSD-3-Clause",
)
