"""Sphinx configuration of sklearn-dnn2gp's documentation (``pip install -e
".[docs]"``, then ``python -m sphinx -W -b html docs docs/_build/html``).

Math renders with MathJax from its CDN when the pages are viewed online."""

from sklearn_dnn2gp.datasets import default_data_dir

project = "sklearn-dnn2gp"
author = "The sklearn-dnn2gp developers"
copyright = "2026, " + author
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

# The API pages are generated from the docstrings, one page per public name.
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
# autodoc documents the methods (docs/_templates/autosummary/class.rst); numpydoc's
# own member tables would list them twice.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

templates_path = ["_templates"]
exclude_patterns = ["_build", "api/generated/*.examples"]
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-dnn2gp {version}"
html_theme_options = {"navigation_with_keys": False}

# numpydoc checks every documented object's docstring at build time; with -W a
# failure stops the build. Every check runs but those that scikit-learn's own
# docstrings do not meet either, as a style: a description for every parameter
# (PR07) and return value (RT02/RT03; "X : array-like of shape ..." says it all),
# "See Also" (SA01), an extended summary (ES01) and examples on each method (EX01;
# each public class has them).
numpydoc_validation_checks = {"all", "PR07", "RT02", "RT03", "SA01", "ES01", "EX01"}

# The gallery: every examples/plot_*.py runs at build time and is rendered with its
# output and figures; the other scripts in examples/ are not part of it.
# The examples that read the reference data run only where the data are: elsewhere
# their pages show the code without its output.
extensions.append("sphinx_gallery.gen_gallery")
_needs_data = ("snelson_in_between", "in_between_vi", "marglik_synthetic", "marglik_wine")
_data = default_data_dir() / "snelson_train_inputs.txt"
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": (r"/plot_" if _data.exists()
                         else r"/plot_(?!(" + "|".join(_needs_data) + r")\.py)"),
    "ignore_pattern": r"^(?!plot_)",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}

