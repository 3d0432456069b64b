"""Explanations: when in a clip the anomaly is, which mel bands changed and by how much, in words."""

import os

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

from ._frames import frame_scores

__all__ = ["explain", "describe_band"]

# A segment is the run of frames around a peak of the (smoothed) frame scores that stays above
# half the peak's height over the clip's median frame score; runs closer than _GAP frames merge.
_SMOOTH = 3
_GAP = 3
# Spread floor (dB) in the band ranking: a band that never varies in the normal clips does not
# get an infinite z-score from a fraction of a dB.
_MIN_SPREAD_DB = 1.0
_MIN_BAND_FRAMES = 16  # the band analysis looks at least this many frames around a segment
_NARROW_OCTAVES = 0.6  # a band group at most this wide is "narrowband"
_BROAD_OCTAVES = 2.0  # at least this wide is "broadband"
_BURST_S = 0.3  # a rise at most this long is a burst
# The frame counts above are for log-mel frames (hop 512 at 16 kHz); where the frames are longer
# windows (a SpectrumTransformer pipeline's), they are scaled to the same durations.
_FRAME_S = 512 / 16000
# How the one segment of a clip below its threshold is introduced.
_NOTHING = "no segment stands out (below the threshold); closest to standing out: "

COLUMNS = [
    "clip", "anomaly_score", "threshold", "anomalous", "segment", "start_s", "end_s", "segment_score",
    "band_low_hz", "band_high_hz", "band_db", "bands", "summary",
]


def explain(estimator, X, *, section=None, n_segments=3, n_bands=3, window=None, features=None):
    """Where and why each clip is anomalous: its top segments in time, the mel bands that
    deviate most from the normal training clips there, and a one-sentence summary.

    For each clip, the frame scores (:func:`frame_scores`, for autoencoders relative to each
    band's normal error: ``relative=True``) give the segments: the run of
    frames around the highest (smoothed) frame score that stays above half its height over
    the clip's median frame score, then further runs whose peak reaches that level, up to
    ``n_segments``; a clip scored below its threshold gets one segment only, the one nearest
    to standing out, its summary introduced by "no segment stands out (below the threshold);
    closest to standing out: ". In each segment, every mel band's mean level is compared with
    its level in the normal training clips, after removing the change
    all bands share (a gain or loudness change); the band furthest from normal in units of
    its normal spread, grown by the neighbouring bands that deviate the same way by at least
    half as much, is the segment's band, reported in dB above or below normal with its Hz
    range. The normal level is that of the clip's own section and domain for an inlier
    detector (the group whose model gives the clip its score:
    :meth:`~skasd.KNNDetector.normal_profile`), else the model's ``band_profile_`` of all
    its training clips. The summary names the time range, the change and a likely kind of component,
    e.g. ``"4.2-5.1 s: +9 dB in 2.0-2.8 kHz, a new narrowband component"``.

    Parameters
    ----------
    estimator : fitted Pipeline or detector
        As in :func:`frame_scores`: a pipeline with a :class:`~skasd.LogMelTransformer`
        step, or a detector fitted on log-mel clips, or a :class:`~skasd.SpectrumTransformer`
        followed by an inlier model (its bands are then the spectrum's bins, about 4 Hz wide,
        and its frames windows of about 1 s). Its feature-fitting step must have a
        ``band_profile_`` (every skasd detector on log-mel or spectra and ClassifierEmbedding
        fitted with skasd 0.2 or later).
    X : list of paths, waveforms, or array of shape (n_clips, n_mels, n_frames)
        Clips in the form ``estimator`` takes.
    section : array-like of shape (n_clips,), default=None
        Section of each clip, for a detector fitted per section.
    n_segments : int, default=3
        Most segments per clip.
    n_bands : int, default=3
        Band groups listed in the ``bands`` column of each segment.
    window : int, default=None
        Window of the inlier models and embeddings, as in :func:`frame_scores`.
    features : LogMelTransformer, default=None
        For a bare detector, the transformer that made ``X`` (see :func:`frame_scores`).

    Returns
    -------
    explanation : pandas.DataFrame
        One row per segment (at least one per clip), columns: ``clip`` (path, or row
        number), ``anomaly_score`` (the clip's), ``threshold`` and ``anomalous`` (the
        clip's score above its threshold), ``segment`` (1 = top), ``start_s``, ``end_s``,
        ``segment_score`` (highest frame score in it; for autoencoders on the relative
        scale of ``frame_scores(relative=True)``), ``band_low_hz``, ``band_high_hz``,
        ``band_db`` (the top band's level minus normal, dB), ``bands`` (the top
        ``n_bands`` band groups, text) and ``summary`` (one sentence).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from skasd import KNNDetector, LogMelTransformer
    >>> from skasd.datasets import make_machine_sounds
    >>> from skasd.inspection import explain
    >>> X, y = make_machine_sounds(n_normal=10, n_anomaly=4, duration=3.0, random_state=0, return_X_y=True)
    >>> pipe = make_pipeline(LogMelTransformer(), KNNDetector()).fit(X[y == 0])
    >>> table = explain(pipe, X[y == 1], n_segments=1)
    >>> table.columns[:4].tolist()
    ['clip', 'anomaly_score', 'threshold', 'anomalous']
    >>> len(table)
    4
    """
    return _explanation(estimator, X, section, n_segments, n_bands, window, features)[0]


def _explanation(estimator, X, section, n_segments, n_bands, window, features):
    """``(explain's table, the frame scores Bunch, each clip's normal band profile)``."""
    for name, value in (("n_segments", n_segments), ("n_bands", n_bands)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"explain: {name} must be a positive int; got {value!r}.")
    fs = frame_scores(estimator, X, section=section, relative=True, window=window, features=features)
    if fs.band_edges is None:
        raise ValueError(
            f"explain names frequency bands in Hz, which needs a LogMelTransformer or SpectrumTransformer; got "
            f"{type(fs._transformer).__name__}."
        )
    # the detector's own input for its groups' profiles (not a fusion's, whose profile is a member's)
    own_input = fs._clip_input if fs._profile_tail[0] is fs._tail[0] else fs.features
    profiles = _profiles(fs._profile_tail, fs.features, section, own_input)
    clip_scores, thresholds = _clip_scores(fs._tail, fs._clip_input, section)
    names = _clip_names(X, len(clip_scores))
    # frames whose STFT window reaches past the clip (centred frames at the ends) hold padding:
    # no segment is sought there
    scores = fs.scores.copy()
    transformer = fs._transformer
    if getattr(transformer, "center", False) and scores.shape[1] > 2:
        edge = min(int(np.ceil(transformer.n_fft / 2 / transformer.hop_length)), (scores.shape[1] - 1) // 2)
        scores[:, :edge] = scores[:, scores.shape[1] - edge :] = np.nan
    # each frame covers `span` seconds: a log-mel frame its hop, a spectrum window its length
    span = fs.get("_span", fs.hop)
    ratio = _FRAME_S / fs.hop if "_span" in fs else 1.0
    smooth, gap = max(1, round(_SMOOTH * ratio)), round(_GAP * ratio)
    min_band = max(1, round(_MIN_BAND_FRAMES * ratio))
    rows = []
    for i in range(len(clip_scores)):
        flagged = bool(clip_scores[i] > thresholds[i])
        # a clip below its threshold: nothing stands out; its one segment nearest to standing out
        for k, (lo, hi, peak) in enumerate(_segments(scores[i], n_segments if flagged else 1, smooth, gap), start=1):
            start, end = max(0.0, fs.times[lo] - span / 2), fs.times[hi] + span / 2
            # bands over at least min_band frames around the segment: a one-frame peak of a
            # steady change is too noisy to tell the bands apart
            pad = max(0, (min_band - (hi - lo + 1) + 1) // 2)
            blo, bhi = max(0, lo - pad), min(scores.shape[1] - 1, hi + pad)
            level, _ = _core_level(fs.features[i][:, blo : bhi + 1], profiles[i], smooth)
            groups = _band_groups(level, profiles[i], n_bands)
            top = groups[0]
            band_lo, band_hi = fs.band_edges[top["lo"], 0], fs.band_edges[top["hi"], 1]
            # how long the change lasts: the frames around the segment where the band group is
            # at least half as far from normal, the same way, as in the core
            group = slice(top["lo"], top["hi"] + 1)
            track = uniform_filter1d(
                np.mean(fs.features[i][group, blo : bhi + 1] - profiles[i][0][group, None], axis=0),
                min(smooth, bhi - blo + 1), mode="nearest",
            )
            lasting = int(np.sum(np.sign(top["db"]) * track >= abs(top["db"]) / 2))
            kind = describe_band(top["db"], band_lo, band_hi, (max(lasting, 1) - 1) * fs.hop + span, top["new"])
            rows.append({
                "clip": names[i], "anomaly_score": clip_scores[i], "threshold": thresholds[i],
                "anomalous": flagged, "segment": k, "start_s": round(start, 3),
                "end_s": round(end, 3), "segment_score": peak, "band_low_hz": band_lo, "band_high_hz": band_hi,
                "band_db": top["db"],
                "bands": "; ".join(
                    f"{_hz(fs.band_edges[g['lo'], 0], fs.band_edges[g['hi'], 1])} {g['db']:+.1f} dB" for g in groups
                ),
                "summary": ("" if flagged else _NOTHING) + f"{start:.1f}-{end:.1f} s: {top['db']:+.0f} dB in "
                           f"{_hz(band_lo, band_hi)}, {kind}",
            })
    return pd.DataFrame(rows, columns=COLUMNS), fs, profiles


def describe_band(db, low_hz, high_hz, duration_s, new=True):
    """A few words on what a band change of ``db`` over ``low_hz``-``high_hz`` Hz lasting
    about ``duration_s`` seconds likely is (the summary's last part).

    Parameters
    ----------
    db : float
        Level change in dB (positive: louder than normal).
    low_hz, high_hz : float
        The band group's range.
    duration_s : float
        How long the change lasts (the segment's core).
    new : bool, default=True
        Whether the band is not a spectral peak of the normal clips (a narrowband rise is
        then "new", else "stronger").

    Returns
    -------
    words : str

    Examples
    --------
    >>> from skasd.inspection import describe_band
    >>> describe_band(9.0, 2000, 2800, 3.0)
    'a new narrowband component'
    >>> describe_band(-12.0, 100, 4000, 0.3)
    'a dropout (energy missing)'
    """
    octaves = np.log2(max(high_hz, 1e-9) / max(low_hz, 1e-9))
    if db >= 0:
        if duration_s <= _BURST_S:
            return "a short burst (an impact or knock)"
        if octaves <= _NARROW_OCTAVES:
            return "a new narrowband component" if new else "a stronger tonal component"
        if octaves >= _BROAD_OCTAVES:
            return "more broadband energy"
        return "more energy in this range"
    if octaves <= _NARROW_OCTAVES:
        return "a weaker or missing component"
    return "a dropout (energy missing)" if duration_s <= 1.0 else "less energy in this range"


def _hz(low, high):
    """``"450-620 Hz"``, ``"2.0-2.8 kHz"``: enough decimals to tell the two ends apart."""
    if high < 1000:
        return f"{low:.0f}-{high:.0f} Hz"
    for digits in (1, 2, 3):
        a, b = f"{low / 1000:.{digits}f}", f"{high / 1000:.{digits}f}"
        if a != b:
            break
    return f"{a}-{b} kHz"


def _segments(scores, n, smoothing=_SMOOTH, gap=_GAP):
    """``[(first frame, last frame, peak score)]`` of the top runs of high frame scores
    (smoothed over ``smoothing`` frames; runs closer than ``gap`` frames merge)."""
    valid = np.isfinite(scores)
    if not valid.any():
        return [(0, len(scores) - 1, float("nan"))]
    raw = np.where(valid, scores, np.nanmin(scores))
    smooth = uniform_filter1d(raw, min(smoothing, len(raw)), mode="nearest")
    base, work, out, level = np.median(smooth), smooth.copy(), [], None
    for _ in range(n):
        p = int(np.argmax(work))
        peak = work[p]
        if level is None:
            level = base + 0.5 * (peak - base)
        elif not np.isfinite(peak) or peak < level:
            break
        # grow over frames above half the peak (not in an earlier segment), bridging gaps up to `gap`
        eligible = (smooth >= base + 0.5 * (peak - base)) & np.isfinite(work)
        lo = hi = p
        while True:
            ahead = np.flatnonzero(eligible[hi + 1 : hi + 2 + gap])
            behind = np.flatnonzero(eligible[max(0, lo - gap - 1) : lo][::-1])
            if ahead.size == 0 and behind.size == 0:
                break
            hi = hi + 1 + ahead[-1] if ahead.size else hi
            lo = lo - 1 - behind[-1] if behind.size else lo
        out.append((lo, hi, float(raw[lo : hi + 1].max())))
        work[max(0, lo - gap) : hi + gap + 1] = -np.inf
    return out


def _core_level(segment, profile, smoothing=_SMOOTH):
    """Mean level per band over the segment's core: its frames whose spectrum is furthest from
    normal (at least half-way from the segment's median distance to its largest), so a knock
    of a few frames is not averaged away over a long segment, while a steady change keeps
    about half of them."""
    mean, spread = profile
    z = (segment - mean[:, None]) / np.maximum(spread, _MIN_SPREAD_DB)[:, None]
    distance = np.abs(z - np.median(z, axis=0)).mean(axis=0)  # per frame, without a shared gain
    distance = uniform_filter1d(distance, min(smoothing, len(distance)), mode="nearest")
    middle = np.median(distance)
    core = distance >= middle + 0.5 * (distance.max() - middle)
    return segment[:, core].mean(axis=1), int(core.sum())


def _band_groups(level, profile, n):
    """Top ``n`` groups of adjacent bands deviating most from ``profile`` (mean, spread) in a
    segment of mean ``level`` per band: dicts ``lo, hi`` (band indices), ``db`` (their mean
    level minus normal), ``new`` (not a normal spectral peak)."""
    mean, spread = profile
    deviation = level - mean
    relative = deviation - np.median(deviation)  # without the change all bands share
    z = relative / np.maximum(spread, _MIN_SPREAD_DB)
    work, groups = np.abs(z), []
    for _ in range(n):
        b = int(np.argmax(work))
        if not np.isfinite(work[b]):
            break
        sign, lo, hi = np.sign(z[b]), b, b
        while lo > 0 and np.isfinite(work[lo - 1]) and np.sign(z[lo - 1]) == sign and abs(z[lo - 1]) >= 0.5 * abs(z[b]):
            lo -= 1
        while (hi < len(z) - 1 and np.isfinite(work[hi + 1]) and np.sign(z[hi + 1]) == sign
               and abs(z[hi + 1]) >= 0.5 * abs(z[b])):
            hi += 1
        around = np.r_[mean[max(0, lo - 4) : lo], mean[hi + 1 : hi + 5]]
        new = around.size == 0 or mean[lo : hi + 1].max() - around.mean() < 6.0
        groups.append({"lo": lo, "hi": hi, "db": float(deviation[lo : hi + 1].mean()), "new": bool(new)})
        work[max(0, lo - 1) : hi + 2] = -np.inf
    return groups


def _profiles(tail, Xlm, section, own_input=None):
    """``(n_clips, 2, n_mels)``: the normal band profile each clip is compared with: for an inlier
    detector its own (section, domain) group's (``normal_profile`` of ``own_input``, the
    detector's input), else the model's profile of all training clips."""
    first = tail[0]
    n = len(Xlm)
    if vars(first).get("model_profiles_") is not None and own_input is not None:
        return first.normal_profile(own_input, section=section if getattr(first, "sections_", None) is not None
                                    else None)
    if hasattr(first, "section_codes"):  # SectionwiseDetector: the judging section's model
        codes = first.section_codes(Xlm, section if getattr(first, "sections_", None) is not None else None)
        return np.stack([_profile_of(first.estimators_[c]) for c in codes])
    if hasattr(first, "detectors_"):  # ScoreFusion: its first sub-detector with a profile
        for member in first.detectors_:
            if getattr(member, "band_profile_", None) is not None:
                return np.repeat(member.band_profile_[None], n, axis=0)
    return np.repeat(_profile_of(first)[None], n, axis=0)


def _profile_of(step):
    profile = getattr(step, "band_profile_", None)
    if profile is None:
        raise ValueError(
            f"{type(step).__name__} has no band_profile_ (the normal level of each band): it was saved by skasd "
            "0.1, or is an autoencoder fitted on 2-D input. Refit it on log-mel clips or clip spectra to explain "
            "its scores."
        )
    return profile


def _clip_scores(tail, Xlm, section):
    """Each clip's anomaly score and the threshold it is compared with."""
    Xt = Xlm
    for step in tail[:-1]:
        Xt = step.transform(Xt)
    det = tail[-1]
    if section is not None and getattr(det, "sections_", None) is not None and hasattr(det, "_score"):
        scores, offsets = det._score(Xt, section)
    else:
        scores, offsets = det.score_samples(Xt), getattr(det, "offset_", np.nan)
    return -np.asarray(scores, dtype=np.float64), -np.broadcast_to(offsets, np.shape(scores)).astype(np.float64)


def _clip_names(X, n):
    if isinstance(X, (list, tuple, pd.Series)) and all(isinstance(x, (str, os.PathLike)) for x in X):
        return [str(x) for x in X]
    return list(range(n))
