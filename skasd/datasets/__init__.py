"""Datasets: index DCASE / MIMII folders and generate synthetic machine sounds."""

from ._dcase import load_dcase
from ._synthetic import make_machine_sounds

__all__ = ["load_dcase", "make_machine_sounds"]
