"""Sphinx configuration for skasd's documentation (``make docs``).

The build is offline: no intersphinx inventories, no fonts, icons or analytics from the
network (pydata-sphinx-theme ships its assets). sphinx-gallery runs every script in
``examples/`` at build time and shows its printed output and matplotlib figures.
"""

import os
import sys
from pathlib import Path

import skasd

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

# One torch thread while the gallery runs its examples (as the test suite does): on a small
# shared CPU torch's default OpenMP threads wait at barriers and slow the build.
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "skasd"
author = "the skasd developers"
copyright = "the skasd developers"
release = version = skasd.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
# sklearn generates set_*_request methods whose docstrings link into sklearn's own docs
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "exclude-members": "set_split_request,set_fit_request,set_partial_fit_request,set_score_request,set_transform_request,"
    "set_predict_request,set_decision_function_request,set_output",
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
exclude_patterns = ["_build", "_field_*.rst"]  # parts included by field.rst

# -- Examples gallery (executed at build time) --------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # run every example, not only plot_*.py; SKASD_DOCS_EXAMPLES (a regex) runs fewer: the
    # test suite's docs build runs the quickstart alone, as tests/test_examples.py runs them all
    "filename_pattern": os.environ.get("SKASD_DOCS_EXAMPLES", r".*\.py$"),
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "gallery_order.ExampleOrder",  # docs/_ext/gallery_order.py
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    # the execution-times page loads jQuery and DataTables from CDNs: not written (offline)
    "write_computation_times": False,
    "show_signature": False,
    "binder": {},
    "jupyterlite": {},
    "recommender": {"enable": False},
}

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skasd {release}"
html_static_path = ["_static"]
html_css_files = ["skasd.css"]
html_show_sourcelink = False
html_theme_options = {
    # nothing that links to or fetches from the network
    "github_url": "",
    "icon_links": [],
    "navbar_end": ["theme-switcher"],
    "analytics": {},
    "use_edit_page_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
    "primary_sidebar_end": [],
}
# Pages without sub-pages get no (empty) section navigation: their text and code use the width.
html_sidebars = {page: [] for page in
                 ("index", "user_guide", "sota", "inlier", "model_files", "report", "scaling")}

# no network at build time: intersphinx inventories are not fetched
intersphinx_mapping = {}
nitpicky = False
