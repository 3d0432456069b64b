"""Shared docstring text: :class:`Substitution`, the one way skasd docstrings share paragraphs.

As in imbalanced-learn, a decorator fills named placeholders ``{name}`` of a docstring.
Unlike ``str.format`` it leaves every other brace alone (parameter types such as
``{"svdd", "mse"}``), and a multi-line value is indented like the line its placeholder starts.
"""

import re

__all__ = ["Substitution"]


class Substitution:
    """Decorator filling the placeholders ``{name}`` of a docstring with ``name=text``.

    Each line of ``text`` after the first is indented like the placeholder's line, so a
    parameter block shared between classes is written once, without indentation.

    Examples
    --------
    >>> @Substitution(seed="random_state : int\\n    Seed.")
    ... def f():
    ...     '''Do it.
    ...
    ...     Parameters
    ...     ----------
    ...     {seed}
    ...     '''
    >>> print(f.__doc__.splitlines()[-2].strip())
    Seed.
    """

    def __init__(self, **params):
        self.params = params

    def __call__(self, obj):
        if obj.__doc__:
            obj.__doc__ = substitute(obj.__doc__, **self.params)
        return obj


def substitute(doc, **params):
    """``doc`` with each placeholder ``{name}`` of ``params`` replaced by its (re-indented) text."""

    def fill(match):
        indent, name = match.group(1), match.group(2)
        if name not in params:
            return match.group(0)
        return indent + str(params[name]).replace("\n", "\n" + indent)

    return re.sub(r"(?m)^([ \t]*)\{([A-Za-z_]\w*)\}", fill, doc)
