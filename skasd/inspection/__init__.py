"""Where and why a clip is anomalous: frame scores in time and explanations in words.

- :func:`frame_scores`: an anomaly score per time frame of each clip, with the times in
  seconds, from any fitted skasd pipeline or detector on log-mel clips.
- :func:`explain`: each clip's top anomalous segments, the mel bands that deviate most
  from the normal training clips there (dB, Hz range), and a one-sentence summary.

The command line has ``skasd explain`` and ``skasd score --frames``; the HTML report and
:class:`skasd.plot.ExplanationDisplay` draw the same on a clip's log-mel image.
"""

from ._explain import describe_band, explain
from ._frames import band_edges, frame_scores, frame_times

__all__ = ["band_edges", "describe_band", "explain", "frame_scores", "frame_times"]
