"""The Jinja2 environment of the report: the template ships as package data, autoescaped."""

import functools

import jinja2


@functools.lru_cache(maxsize=1)
def _environment():
    return jinja2.Environment(
        loader=jinja2.PackageLoader("skasd.report", "templates"),
        autoescape=True,  # every value (paths, parameters, titles) is HTML-escaped
        undefined=jinja2.StrictUndefined,  # a misspelt field fails loudly, never renders empty
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(context):
    """The report page for ``context`` (see ``_html.write_report``)."""
    return _environment().get_template("report.html").render(**context)
