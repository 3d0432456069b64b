"""Frame scores of any skasd estimator or pipeline, with their times in seconds and bands in Hz."""

import librosa
import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from ..features._spectral import LogMelTransformer, _SpectralTransformer
from ..features._spectrum import SpectrumTransformer
from ..models._frames import DEFAULT_WINDOW, window_starts, windows_to_frames

__all__ = ["frame_scores"]

_ALTERNATIVES = (
    "Frame scores exist for autoencoders on log-mel (DenseAE, VAE, CNNAE), inlier models on log-mel "
    "(make_pipeline(LogMelTransformer(), KNNDetector())) or on clip spectra (make_pipeline(SpectrumTransformer(), "
    "KNNDetector())) and ClassifierEmbedding + an inlier model."
)
# Spectrum pipelines: Welch frames per scored window (8 x 2048 samples: ~1 s at the defaults),
# and windows every quarter window.
SPECTRUM_WINDOW = 8


def frame_scores(estimator, X, *, section=None, per_band=False, relative=False, window=None, features=None):
    """Anomaly score of each time frame of each clip, with the frame times in seconds.

    Works on a fitted pipeline from the clips (paths or waveforms) to a detector, the way
    it was trained, e.g. ``make_pipeline(LogMelTransformer(), DenseAE())``, or on a fitted
    detector and log-mel clips. What a frame score is depends on the detector (the clip
    score stays what ``score_samples`` gives):

    - autoencoders (:class:`~skasd.DenseAE`, :class:`~skasd.VAE`, :class:`~skasd.CNNAE`):
      the reconstruction error at each frame, averaged over the windows (patches) that
      cover it; the clip score is its weighted mean. ``per_band=True`` adds the
      ``(band, frame)`` map.
    - :class:`~skasd.ClassifierEmbedding` followed by an inlier model: what each window of
      patches adds to the clip's anomaly score, i.e. the inlier model's score of the clip
      minus its score of the clip's other patches pooled the same way (occlusion), each
      frame getting the mean over the windows covering it.
    - inlier models on log-mel (per-band statistics): the model's score of the statistics
      of the ``window`` frames around each frame.
    - inlier models on clip spectra (:class:`~skasd.SpectrumTransformer`): what each window
      of the clip (about 1 s, every quarter window) adds to the clip's anomaly score, i.e.
      the model's score of the clip minus its score of the clip's spectrum without that
      window (occlusion); the frames are these windows, and ``features`` their spectra. A
      clip no longer than one window is one window, scored as the whole clip.
    - :class:`~skasd.ScoreFusion`: its sub-detectors' frame scores, standardised and
      weighted as their clip scores are; :class:`~skasd.SectionwiseDetector`: each clip's
      section model's.

    Inlier models on clip statistics (:class:`~skasd.ClipStatsTransformer`) have no time
    axis and raise a ``ValueError`` naming the alternatives.

    Parameters
    ----------
    estimator : fitted Pipeline or detector
        A pipeline with a :class:`~skasd.LogMelTransformer` (or
        :class:`~skasd.MFCCTransformer`) step, or a detector fitted on log-mel clips.
    X : list of paths, waveforms, or array of shape (n_clips, n_mels, n_frames)
        Clips in the form ``estimator`` takes (log-mel for a bare detector).
    section : array-like of shape (n_clips,), default=None
        Section of each clip, for a detector fitted per section.
    per_band : bool, default=False
        Also return the ``(band, frame)`` map (autoencoders only).
    relative : bool, default=False
        Autoencoders: each band's error divided by its mean on the normal training clips
        (``band_error_``) before the mean over bands, so that a change in a quiet band counts
        as much as one in a band the model always reconstructs poorly (what
        :func:`explain` uses; the scores then no longer pool to the clip score). Ignored
        by the other detectors and inside a ScoreFusion (which standardises raw scores).
    window : int, default=None
        Frames per window: of the inlier models' band statistics (None: 32, about 1 s at
        16 kHz, hop 512), of the embedding's occluded patches (None: two patches), and Welch
        frames per window of a spectrum pipeline (None: 8, about 1 s at the defaults).
    features : LogMelTransformer, default=None
        For a bare detector, or a pipeline without a feature step, given log-mel clips: the
        transformer that made ``X``, for the times and bands (None for a bare detector:
        ``LogMelTransformer()``'s defaults, checked against ``X``'s number of bands).
        Ignored for a pipeline with a feature step.

    Returns
    -------
    result : Bunch
        ``scores`` ndarray (n_clips, n_frames): anomaly score per frame (higher = more
        anomalous; NaN where no window covers a frame); ``times`` (n_frames,): each
        frame's centre in seconds; ``hop`` seconds between frames; ``band_edges``
        (n_mels, 2): each mel band's (or spectrum bin's) range in Hz (None for MFCC); ``band_scores``
        (n_clips, n_mels, n_frames) with ``per_band``, else None; ``features``: the log-mel
        clips the detector saw (n_clips, n_mels, n_frames), the MFCCs of an MFCC pipeline, or
        the windows' spectra of a spectrum pipeline (n_clips, n_bins, n_windows).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from skasd import DenseAE, LogMelTransformer
    >>> from skasd.datasets import make_machine_sounds
    >>> from skasd.inspection import frame_scores
    >>> X, y = make_machine_sounds(n_normal=8, n_anomaly=2, duration=2.0, random_state=0, return_X_y=True)
    >>> pipe = make_pipeline(LogMelTransformer(), DenseAE(max_epochs=2, random_state=0)).fit(X[y == 0])
    >>> fs = frame_scores(pipe, X[y == 1])
    >>> fs.scores.shape, fs.times[:3].round(3).tolist()
    ((2, 63), [0.0, 0.032, 0.064])
    """
    if hasattr(estimator, "fuse_frame_scores") and all(isinstance(m, Pipeline) for m in estimator.detectors_):
        # ScoreFusion of pipelines from the clips: each member's own frame scores, fused
        if per_band:
            raise ValueError("per_band: band maps come from autoencoders; ScoreFusion fuses frame scores only.")
        # raw scores: the fusion standardises each member as its clip scores
        if any(isinstance(step, SpectrumTransformer) for m in estimator.detectors_ for _, step in m.steps):
            raise ValueError(
                "frame scores of a ScoreFusion with a SpectrumTransformer pipeline: its window scores are what each "
                "window adds to the clip score (occlusion), which the fusion cannot standardise like clip scores; "
                "explain each pipeline on its own."
            )
        parts = [frame_scores(m, X, section=section, window=window) for m in estimator.detectors_]
        if len({p.scores.shape for p in parts}) > 1:
            raise ValueError(
                "the ScoreFusion's pipelines score frames on different time grids "
                f"({', '.join(type(m.steps[0][1]).__name__ for m in estimator.detectors_)}); fuse frame scores of "
                "pipelines with the same feature step."
            )
        out = parts[0]
        out.scores = estimator.fuse_frame_scores([p.scores for p in parts])
        # the verdict is the fusion's (on the clips); the band profile its first member's
        out._profile_tail, out._tail, out._clip_input = out._tail, [estimator], X
        return out
    if isinstance(estimator, Pipeline) and any(isinstance(step, SpectrumTransformer) for _, step in estimator.steps):
        return _spectrum_frames(estimator, X, section, per_band, window)
    transformer, Xlm, tail = _split(estimator, X, features)
    scores, band_scores = _tail_frames(tail, Xlm, section, per_band, window, relative)
    return Bunch(
        scores=scores, band_scores=band_scores, features=Xlm, hop=transformer.hop_length / transformer.sr,
        times=frame_times(transformer, Xlm.shape[2]), band_edges=band_edges(transformer),
        _tail=tail, _profile_tail=tail, _clip_input=Xlm, _transformer=transformer,
    )


def frame_times(transformer, n_frames):
    """Centre of each frame in seconds for ``transformer``'s STFT."""
    offset = 0 if transformer.center else transformer.n_fft // 2
    return (np.arange(n_frames) * transformer.hop_length + offset) / transformer.sr


def band_edges(transformer):
    """``(n_mels, 2)`` Hz range of each mel band (half-way to the neighbouring centres), or of
    each bin of a :class:`~skasd.SpectrumTransformer` (``(n_fft // 2 + 1, 2)``), or None where
    the output bands are not frequency bands (MFCC)."""
    if isinstance(transformer, SpectrumTransformer):
        f = np.arange(transformer.n_fft // 2 + 1) * transformer.sr / transformer.n_fft
        half = transformer.sr / transformer.n_fft / 2
        return np.column_stack([np.maximum(f - half, 0.0), np.minimum(f + half, transformer.sr / 2)])
    if not isinstance(transformer, LogMelTransformer):
        return None
    fmax = transformer.sr / 2 if transformer.fmax is None else transformer.fmax
    f = librosa.mel_frequencies(transformer.n_mels + 2, fmin=transformer.fmin, fmax=fmax)
    return np.column_stack([(f[:-2] + f[1:-1]) / 2, (f[1:-1] + f[2:]) / 2])


def _split(estimator, X, features):
    """``(spectral transformer, its output for X, the steps after it)``."""
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
        where = [i for i, step in enumerate(steps) if isinstance(step, _SpectralTransformer)]
        if not where and features is not None:  # a pipeline on log-mel clips made by `features`
            return _split_logmel(estimator, X, features, steps)
        if not where:
            names = [type(s).__name__ for s in steps]
            raise ValueError(
                f"frame scores need a time axis: the pipeline {names} has no LogMelTransformer or "
                f"MFCCTransformer step, so {names[-1]} sees one vector per clip (clip statistics) and has no "
                f"frame scores. {_ALTERNATIVES} For a pipeline on log-mel clips, pass features=<the "
                "LogMelTransformer that made them>."
            )
        i = where[-1]
        Xt = X
        for step in steps[: i + 1]:
            Xt = step.transform(Xt)
        return steps[i], np.asarray(Xt, dtype=np.float32), steps[i + 1 :]
    return _split_logmel(estimator, X, features, [estimator])


def _spectrum_frames(estimator, X, section, per_band, window):
    """Frame scores of a pipeline from the clips through a SpectrumTransformer to a detector:
    what each window of Welch frames adds to the clip's anomaly score (occlusion: the clip's
    score minus the score of its spectrum without that window). The frames are the windows;
    ``features`` are each window's own spectrum."""
    steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
    names = [type(step).__name__ for step in steps]
    if len(steps) != 2 or not isinstance(steps[0], SpectrumTransformer):
        raise ValueError(
            f"frame scores of a spectrum pipeline need SpectrumTransformer followed by a detector; got {names}. "
            f"{_ALTERNATIVES}"
        )
    spectrum, det = steps
    check_is_fitted(det)
    if per_band:
        raise ValueError(f"per_band: {names[1]} scores windows of the clip, not bands; autoencoders have band maps.")
    frames = SPECTRUM_WINDOW if window is None else window
    if not isinstance(frames, (int, np.integer)) or isinstance(frames, bool) or frames < 1:
        raise ValueError(f"window must be a positive int (Welch frames per window); got {frames!r}.")
    P, centres, frame_s = spectrum._frame_powers(X)
    n_clips, n_bins, n_frames = P.shape
    width, step = min(frames, n_frames), max(1, frames // 4)
    starts = window_starts(n_frames, width, step, cover_end=True)  # the last window ends at the clip's end
    kw = _section_kw(det, section)

    def anomaly(rows, repeat):
        return -det.score_samples(rows.reshape(-1, n_bins), **{k: np.repeat(np.asarray(v), repeat) for k, v in kw.items()})

    total = P.sum(axis=2)
    clip = spectrum._db(total / n_frames)
    in_window = np.stack([P[:, :, s : s + width].sum(axis=2) for s in starts], axis=1)  # (clips, windows, bins)
    if width < n_frames:
        without = spectrum._db((total[:, None] - in_window) / (n_frames - width))
        scores = anomaly(clip, 1)[:, None] - anomaly(without, len(starts)).reshape(n_clips, len(starts))
    else:  # one window: the whole clip
        scores = anomaly(clip, 1)[:, None]
    return Bunch(
        scores=scores, band_scores=None, features=spectrum._db(in_window / width).transpose(0, 2, 1),
        hop=step * spectrum._hop() / spectrum.sr, times=(centres[starts] + centres[starts + width - 1]) / 2,
        band_edges=band_edges(spectrum), _tail=[det], _profile_tail=[det], _clip_input=clip, _transformer=spectrum,
        _span=frame_s + (width - 1) * spectrum._hop() / spectrum.sr,
    )


def _split_logmel(estimator, X, features, tail):
    transformer = LogMelTransformer() if features is None else features
    if not isinstance(transformer, _SpectralTransformer):
        raise ValueError(f"features must be the LogMelTransformer that made X; got {type(transformer).__name__}.")
    Xlm = np.asarray(X, dtype=np.float32) if not hasattr(X, "subset") else X
    if Xlm.ndim != 3:
        raise ValueError(
            f"{type(estimator).__name__}: frame scores without a feature step need log-mel clips (n_clips, n_mels, "
            f"n_frames); got shape {Xlm.shape}. Pass the whole pipeline to score clips from paths or waveforms."
        )
    if Xlm.shape[1] != transformer._n_bands_out():
        raise ValueError(
            f"X has {Xlm.shape[1]} bands but the assumed {type(transformer).__name__} gives "
            f"{transformer._n_bands_out()}: pass features=<the transformer that made X>."
        )
    return transformer, Xlm, tail


def _tail_frames(tail, Xlm, section, per_band, window, relative=False):
    """Frame scores of the steps after the spectral transformer: ``(scores, band_scores)``."""
    if not tail:
        raise ValueError("frame scores need a detector after the feature step; the pipeline ends with features.")
    for step in tail:
        check_is_fitted(step)
    *middle, det = tail
    name = type(det).__name__
    if not middle:
        if hasattr(det, "detectors_") and hasattr(det, "fuse_frame_scores"):  # ScoreFusion
            if per_band:
                raise ValueError("per_band: band maps come from autoencoders; ScoreFusion fuses frame scores only.")
            # raw scores: the fusion standardises each member as its clip scores
            members = [_member_frames(m, Xlm, section, window) for m in det.detectors_]
            return det.fuse_frame_scores(members), None
        if not hasattr(det, "frame_scores"):
            raise ValueError(f"{name} has no frame scores.")
        inner = det.estimators_[0] if hasattr(det, "section_codes") else det  # SectionwiseDetector
        kwargs = _section_kw(det, section)
        if hasattr(inner, "models_"):  # an inlier model: windows of band statistics
            kwargs["window"] = DEFAULT_WINDOW if window is None else window
        if relative and vars(inner).get("band_error_") is not None:  # an autoencoder (not from skasd 0.1)
            kwargs["relative"] = True
        if per_band:
            if not hasattr(inner, "net_"):
                raise ValueError(
                    f"per_band: {type(inner).__name__} has no (band, frame) map; autoencoders (DenseAE, VAE, "
                    "CNNAE) have one."
                )
            maps = det.frame_scores(Xlm, per_band=True, **kwargs)
            return maps.mean(axis=1), maps
        return det.frame_scores(Xlm, **kwargs), None
    if len(middle) == 1 and hasattr(middle[0], "occlusion_transform"):
        if per_band:
            raise ValueError(
                f"per_band: {type(middle[0]).__name__} + {name} scores windows, not bands; autoencoders have band maps."
            )
        emb = middle[0]
        Z, clip, starts, width = emb.occlusion_transform(Xlm, window)
        n_clips, n_windows = Z.shape[:2]
        kw = _section_kw(det, section)
        without = -det.score_samples(Z.reshape(n_clips * n_windows, -1),
                                     **{k: np.repeat(np.asarray(v), n_windows) for k, v in kw.items()})
        with_all = -det.score_samples(clip, **kw)
        # what each window adds to the clip's anomaly score
        scores = with_all[:, None] - without.reshape(n_clips, n_windows)
        return windows_to_frames(scores, starts, width, Xlm.shape[2]), None
    flat = [type(s).__name__ for s in middle]
    raise ValueError(
        f"frame scores need a time axis up to the detector, but {flat} pool(s) each clip into one vector "
        f"first. {_ALTERNATIVES}"
    )


def _member_frames(member, Xlm, section, window):
    """A ScoreFusion member's frame scores on the fusion's log-mel input."""
    if isinstance(member, Pipeline):
        raise ValueError(
            "a ScoreFusion after a feature step with pipelines among its sub-detectors: fuse pipelines from "
            "the clips (ScoreFusion([(name, make_pipeline(LogMelTransformer(), ...)), ...])) or detectors on "
            "log-mel (make_pipeline(LogMelTransformer(), ScoreFusion([...])))."
        )
    return _tail_frames([member], Xlm, section, False, window)[0]


def _section_kw(det, section):
    """``section=`` for a detector fitted per section; nothing for one fitted without."""
    return {} if section is None or getattr(det, "sections_", None) is None else {"section": section}
