"""Sphinx configuration for skasd's documentation (``make docs``)."""

import skasd

project = "skasd"
author = "the skasd developers"
release = version = skasd.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
]
autosummary_generate = True
# sklearn generates set_*_request methods whose docstrings link into sklearn's own docs
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "exclude-members": "set_split_request,set_fit_request,set_score_request,set_transform_request,"
    "set_predict_request,set_decision_function_request,set_output",
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
# no network at build time: intersphinx inventories are not fetched
intersphinx_mapping = {}
nitpicky = False
