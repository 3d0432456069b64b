"""Order of the examples in the gallery: the recommended start first, then the rest."""

ORDER = ("quickstart.py", "real_toycar.py", "explain.py", "grid_search.py", "spectrograms.py")


class ExampleOrder:
    """sphinx-gallery ``within_subsection_order`` key: ``ORDER``, then any other file by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (ORDER.index(filename) if filename in ORDER else len(ORDER), filename)

    def __repr__(self):  # sphinx-gallery compares configurations by their repr
        return f"{type(self).__name__}()"
