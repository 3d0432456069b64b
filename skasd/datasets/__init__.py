"""Datasets: index DCASE / MIMII folders and generate synthetic machine sounds."""

from ._dcase import load_dcase

__all__ = ["load_dcase"]
