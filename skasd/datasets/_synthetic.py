"""Synthetic machine sounds with loudness-matched, labelled and localised anomalies (for tests and the demo)."""

import numbers
import zlib

import numpy as np
from scipy.fft import irfft, rfft, rfftfreq
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_machine_sounds", "ANOMALY_TYPES", "DEFAULT_ANOMALY_TYPES"]

ANOMALY_TYPES = ("harmonic", "drift", "knock", "dropout", "whine")
DEFAULT_ANOMALY_TYPES = ANOMALY_TYPES[:4]  # anomaly_types=None: "whine" came later, only on request
MIN_SR = 8000
MIN_DURATION = 0.1
_TABLE = 4096  # samples in one wavetable cycle (at half the fundamental, so half-order partials fit)
LOUDNESS_DBFS = (-34.0, -28.0)  # every clip's RMS level, normal or not, is drawn uniformly from here
# Normal clip-to-clip variation (standard deviations):
F0_JITTER = 0.006  # relative, of the fundamental
HARMONIC_JITTER_DB = 1.25  # of each harmonic's level
LEVEL_JITTER_DB = 1.5  # of the noise and click levels
# Anomaly severities, each drawn uniformly from its range per clip:
HALF_ORDER_DB = (-14.0, 0.0)  # half-order partials, relative to their neighbouring harmonics
BOOST_DB = (5.0, 14.0)  # gain of a group of 3-6 harmonics
DRIFT = (0.003, 0.03)  # relative change of the fundamental by the end of the clip
KNOCK_PEAK = (1.5, 8.0)  # knock peak amplitudes, in units of the clip's RMS before the knocks
KNOCK_RATE = (0.3, 2.0)  # knocks per second
DROPOUT_DB = (-25.0, -4.0)  # tone level during a dropout
DROPOUT_S = (0.04, 0.4)  # length of one dropout in seconds
DROPOUT_COUNT = (1, 4)  # dropouts per clip
WHINE_DB = (6.0, 20.0)  # whine power over the clip's normal power in the whine's band (+-1/12 octave)
WHINE_HZ = (400.0, 0.35)  # whine frequency range: from 400 Hz to 0.35 * sr, log-uniform
WHINE_S = (1.0, 4.0)  # whine length in seconds (at most half the clip)
WHINE_FADE_S = 0.02  # fade in and out of the whine
# local=True: knocks and a dropout confined to one stretch of the clip (at most half of it)
LOCAL_KNOCK_COUNT = (1, 3)  # knocks in the stretch
LOCAL_KNOCK_S = (0.2, 1.0)  # length of the stretch the knocks fall in
LOCAL_DROPOUT_S = (0.2, 1.0)  # length of the single dropout
# Truth bands (anomaly_band) are made of analysis bands max(BAND_HZ, BAND_REL * f) wide around
# frequencies f (about the bands of a 128-band mel spectrogram at 16 kHz): a truth band spans the
# frequencies whose expected change in dB is within BAND_TOP_DB of the largest change, plus half
# an analysis band on each side.
BAND_HZ, BAND_REL, BAND_TOP_DB = 25.0, 0.025, 3.0
KNOCK_FRAME_S = 0.064  # a knock's change: its energy over that of one such frame of the normal sound
# Unit-to-unit deviations of the IDs of one machine_type (standard deviations), a few times
# the normal clip-to-clip variation above: the IDs sound alike, as units of one product do.
UNIT_F0 = 0.03  # relative, of the fundamental
UNIT_HARMONIC_DB = 2.5  # of each harmonic's level
UNIT_RESONANCE = 0.05  # relative, of the formant, noise-resonance and click frequencies
UNIT_RATE = 0.1  # relative, of the click rate
UNIT_LEVEL_DB = 1.5  # of the noise and click levels

DESCR = f"""\
Synthetic machine sounds
------------------------
Each machine ID (its parameters depend only on the ID's name) is a harmonic motor tone
(own fundamental, harmonic weights and resonance), periodic mechanical clicks at its own
rate and resonance, and coloured broadband noise with its own slope and resonances.
With a machine_type, the IDs are units of one design drawn from the type's name, each
deviating from it slightly (standard deviations): fundamental {UNIT_F0:.0%}, harmonic
levels {UNIT_HARMONIC_DB} dB, resonance frequencies {UNIT_RESONANCE:.0%}, click rate
{UNIT_RATE:.0%}, noise and click levels {UNIT_LEVEL_DB} dB.
Normal clips vary slightly (standard deviations): fundamental {F0_JITTER:.1%}, harmonic
levels {HARMONIC_JITTER_DB} dB, noise and click levels {LEVEL_JITTER_DB} dB; phases and click
timing are random. Anomalies, each with a severity drawn uniformly from a range:

- harmonic: half-order partials at {HALF_ORDER_DB[0]:g} to {HALF_ORDER_DB[1]:g} dB relative to
  their neighbours, or a group of 3-6 harmonics raised by {BOOST_DB[0]:g} to {BOOST_DB[1]:g} dB;
- drift: from a random moment in the first half, the fundamental drifts by
  {DRIFT[0]:.1%} to {DRIFT[1]:.1%} by the end of the clip;
- knock: {KNOCK_RATE[0]:g} to {KNOCK_RATE[1]:g} irregular impacts per second (a structural
  resonance plus a click), peaking at {KNOCK_PEAK[0]:g} to {KNOCK_PEAK[1]:g} times the RMS;
- dropout: {DROPOUT_COUNT[0]} to {DROPOUT_COUNT[1]} times, the motor tone drops to
  {DROPOUT_DB[0]:g} to {DROPOUT_DB[1]:g} dB for {DROPOUT_S[0]:g} to {DROPOUT_S[1]:g} s;
- whine (only when asked for): a bearing whine, a pure tone at {WHINE_HZ[0]:g} Hz to
  {WHINE_HZ[1]:g} * sr (log-uniform) for {WHINE_S[0]:g} to {WHINE_S[1]:g} s (at most half the clip),
  with {WHINE_FADE_S * 1000:g} ms fades, {WHINE_DB[0]:g} to {WHINE_DB[1]:g} dB above the clip's normal
  power within 1/12 octave of it.

With local=True, knocks and dropouts are confined to one stretch of at most half the clip:
{LOCAL_KNOCK_COUNT[0]} to {LOCAL_KNOCK_COUNT[1]} knocks within {LOCAL_KNOCK_S[0]:g} to {LOCAL_KNOCK_S[1]:g} s,
or one dropout of {LOCAL_DROPOUT_S[0]:g} to {LOCAL_DROPOUT_S[1]:g} s.

Each anomaly's truth is recorded from its own random draws: the interval in which it is
audible (anomaly_onset, anomaly_offset), whether that interval is one confined stretch
(anomaly_local) and the frequency range it changes most (anomaly_band).

Every clip's RMS level, normal or anomalous, is drawn from one distribution (uniform
in {LOUDNESS_DBFS[0]:g} to {LOUDNESS_DBFS[1]:g} dBFS) and imposed by normalisation, so
loudness alone cannot find the anomalies.
"""


def _db(x):
    return 10.0 ** (np.asarray(x) / 20.0)


def _decay(freq, tau, sr):
    """``exp(-t / tau) * sin(2 pi freq t)`` over five time constants."""
    t = np.arange(int(5 * tau * sr) + 1) / sr
    return np.exp(-t / tau) * np.sin(2 * np.pi * freq * t)


def _place(signal, kernel, times, amplitudes, sr):
    """Add ``amplitude * kernel`` at each time (seconds) into ``signal``, cut at its end."""
    for start, amplitude in zip(np.round(times * sr).astype(np.intp), amplitudes):
        if 0 <= start < signal.size:
            part = kernel[: signal.size - start]
            signal[start : start + part.size] += amplitude * part
    return signal


def _machine(machine_id, n_samples, sr, machine_type=None):
    """The sound of one machine ID: parameters drawn from a seed that depends only on its name.

    With ``machine_type``, the design (fundamental, harmonic weights, resonances, click and
    noise character) is drawn from the type's name, and the ID, a unit of that type, only
    deviates from it by the ``UNIT_*`` amounts, drawn from the type's and the ID's names.
    """
    rs = np.random.RandomState(zlib.crc32((machine_type or machine_id).encode()))
    unit_rs = None if machine_type is None else np.random.RandomState(zlib.crc32(f"{machine_type}/{machine_id}".encode()))

    def unit(scale, size=None):  # the unit's deviation from its type's design
        return np.zeros(size or ()) if unit_rs is None else unit_rs.normal(0.0, scale, size)

    f0 = np.exp(rs.uniform(np.log(50.0), np.log(320.0)))
    n_harmonics = int(min(48, 0.4 * sr / (f0 * 1.06)))  # headroom for jitter and drift below Nyquist
    f0 *= np.exp(unit(UNIT_F0))
    harmonics = np.arange(1, n_harmonics + 1)
    gain, centre, width = rs.uniform(6, 18), rs.uniform(np.log(300), np.log(0.3 * sr)), rs.uniform(0.3, 0.8)
    centre += unit(UNIT_RESONANCE)
    formant = gain * np.exp(-0.5 * ((np.log(f0 * harmonics) - centre) / width) ** 2)
    harmonic_db = -rs.uniform(4, 9) * np.log2(harmonics) + formant + rs.normal(0, 4, n_harmonics)
    harmonic_db += unit(UNIT_HARMONIC_DB, n_harmonics)

    freqs = np.maximum(rfftfreq(n_samples, 1.0 / sr), 20.0)
    noise_db = -10 * rs.uniform(0.5, 1.8) * np.log10(freqs / 1000.0)
    for _ in range(2):
        centre, width = rs.uniform(np.log(150), np.log(0.4 * sr)) + unit(UNIT_RESONANCE), rs.uniform(0.1, 0.4)
        noise_db += rs.uniform(4, 12) * np.exp(-0.5 * ((np.log(freqs) - centre) / width) ** 2)
    noise_shape = _db(noise_db)
    click_freq = np.exp(rs.uniform(np.log(600), np.log(0.35 * sr)) + unit(UNIT_RESONANCE))
    click = _decay(min(click_freq, 0.45 * sr), rs.uniform(0.003, 0.01), sr)
    return dict(
        f0=f0, harmonic_db=harmonic_db, t=np.arange(n_samples) / sr,
        noise_shape=noise_shape / np.sqrt(np.mean(noise_shape**2)), noise_db=rs.uniform(-8, -2) + unit(UNIT_LEVEL_DB),
        click=click, click_rate=rs.uniform(2.0, 10.0) * np.exp(unit(UNIT_RATE)),
        click_db=rs.uniform(-9, -3) + unit(UNIT_LEVEL_DB),
    )


def _tone(m, kind, g, sr, local=False):
    """Motor tone by wavetable synthesis (unit RMS before anomalies), the table cycling at f0 / 2.

    Returns the tone and a dict of what was drawn: ``f0`` (this clip's), ``amplitudes`` (of the
    harmonics 1, 2, ..., before any anomaly) and, per anomaly, ``partials`` (the changed partials
    as multiples of f0), ``drift`` and ``start``, or ``gate`` (the least tone gain) and
    ``intervals`` (start, end of each dropout, in seconds).
    """
    n_h = len(m["harmonic_db"])
    amplitudes = np.zeros(_TABLE // 2 + 1)
    amplitudes[2 : 2 * n_h + 1 : 2] = _db(m["harmonic_db"] + g.normal(0, HARMONIC_JITTER_DB, n_h))
    amplitudes /= np.sqrt(np.sum(amplitudes**2) / 2)
    info = dict(amplitudes=amplitudes[2 : 2 * n_h + 1 : 2].copy())
    if kind == "harmonic":
        low, count = g.integers(0, max(1, n_h - 6)), g.integers(3, 7)
        if g.random() < 0.5:  # half-order partials between harmonics low + 1 .. low + count + 1
            idx = np.arange(2 * low + 3, 2 * (low + count) + 2, 2)
            amplitudes[idx] = (amplitudes[idx - 1] + amplitudes[idx + 1]) / 2 * _db(g.uniform(*HALF_ORDER_DB))
        else:  # a group of harmonics grows
            idx = np.arange(2 * (low + 1), 2 * (low + count) + 1, 2)
            amplitudes[idx] *= _db(g.uniform(*BOOST_DB))
        info["partials"] = idx[amplitudes[idx] > 0] / 2  # those beyond the last harmonic stay silent
    spectrum = amplitudes * np.exp(1j * (g.uniform(0, 2 * np.pi, amplitudes.size) - np.pi / 2)) * (_TABLE / 2)
    table = irfft(spectrum, _TABLE)
    table = np.stack([table, np.roll(table, -1) - table], axis=1)  # value, slope to the next sample

    t = m["t"]
    phase = g.random()
    info["f0"] = m["f0"] * (1 + g.normal(0, F0_JITTER))
    cycles = phase + info["f0"] / 2 * t
    if kind == "drift":  # f0 * (1 + depth * ramp), ramp rising from 0 at `start` to 1 at the end
        start = info["start"] = g.uniform(0, 0.5) * t[-1]
        ramp_integral = np.maximum(t - start, 0) ** 2 / (2 * (t[-1] - start))
        info["drift"] = g.choice([-1, 1]) * g.uniform(*DRIFT)
        cycles += info["drift"] * m["f0"] / 2 * ramp_integral
    position = np.mod(cycles * _TABLE, _TABLE, out=cycles)
    index = position.astype(np.intp)
    value_slope = table[index]  # linear interpolation, in place for speed
    tone = np.multiply(np.subtract(position, index, out=position), value_slope[:, 1], out=position)
    tone += value_slope[:, 0]
    if kind == "dropout":
        gate, duration = np.ones_like(t), t.size / sr
        if local:  # one dropout, long enough to span several frames, inside the clip
            length = min(g.uniform(*LOCAL_DROPOUT_S), duration / 2)
            starts_lengths = [(g.uniform(0, duration - length), length)]
        else:
            n_dropouts = g.integers(DROPOUT_COUNT[0], DROPOUT_COUNT[1] + 1)
            starts_lengths = ((g.uniform(0, t[-1]), g.uniform(*DROPOUT_S)) for _ in range(n_dropouts))
        info["intervals"] = []
        for start, length in starts_lengths:
            box = np.clip(np.minimum(t - start, start + length - t) / 0.005, 0, 1)  # 5 ms ramps
            gate -= (1 - _db(g.uniform(*DROPOUT_DB))) * box
            info["intervals"].append((start, min(start + length, duration)))
        gate = np.clip(gate, 0, 1)
        info["gate"] = gate.min()
        tone *= gate
    return tone, info


def _background(m, kind, g, sr, local=False):
    """Coloured noise (shaped in the frequency domain), periodic clicks and, for knocks, impacts.

    Returns the background and a dict; for knocks, ``quiet`` (the background without them),
    ``kernel`` (one impact, peaking at 1), ``peak`` (the loudest impact's peak) and ``times`` (s).
    """
    n_samples, duration = m["t"].size, m["t"].size / sr
    size = m["noise_shape"].size
    noise = irfft((g.standard_normal(size) + 1j * g.standard_normal(size)) * m["noise_shape"], n_samples)
    noise *= _db(m["noise_db"] + g.normal(0, LEVEL_JITTER_DB)) / np.sqrt(np.mean(noise**2))

    rate = m["click_rate"] * (1 + g.normal(0, 0.01))
    times = g.uniform(0, 1 / rate) + np.arange(int(duration * rate) + 1) / rate + g.normal(0, 0.03 / rate)
    clicks = _place(np.zeros(n_samples), m["click"], times, g.lognormal(0, 0.15, times.size), sr)
    expected_rms = np.sqrt(rate * np.sum(m["click"] ** 2) / sr)  # also when no click falls in a short clip
    clicks *= _db(m["click_db"] + g.normal(0, LEVEL_JITTER_DB)) / expected_rms
    background = noise + clicks
    info = {}
    if kind == "knock":
        kernel = _decay(g.uniform(150, 1500), g.uniform(0.005, 0.025), sr)
        click = _decay(g.uniform(2000, 0.3 * sr), g.uniform(0.0005, 0.0015), sr)
        kernel[: click.size] += 0.5 * click
        kernel /= np.abs(kernel).max()
        if local:  # a few knocks within one stretch, their decay inside the clip where it fits
            count = g.integers(LOCAL_KNOCK_COUNT[0], LOCAL_KNOCK_COUNT[1] + 1)
            length = min(g.uniform(*LOCAL_KNOCK_S), duration / 2)
            start = g.uniform(0, max(0.0, duration - length - kernel.size / sr))
            times = np.sort(start + g.uniform(0, length, count))
        else:
            times = g.uniform(0, duration, max(1, g.poisson(g.uniform(*KNOCK_RATE) * duration)))
        mix_rms = np.sqrt(1 + np.mean(background**2))  # the tone has unit RMS
        peaks = mix_rms * g.uniform(*KNOCK_PEAK) * g.lognormal(0, 0.2, times.size)
        info = dict(quiet=background.copy(), kernel=kernel, peak=peaks.max())
        _place(background, kernel, times, peaks, sr)
        placed = times[np.round(times * sr) < n_samples]
        info["times"] = placed if placed.size else times
    return background, info


def _whine(x, g, sr):
    """Add a whine to ``x`` in place; return its frequency, onset and offset (s)."""
    n_samples = x.size
    duration = n_samples / sr
    freq = np.exp(g.uniform(np.log(WHINE_HZ[0]), np.log(WHINE_HZ[1] * sr)))
    length = min(g.uniform(*WHINE_S), duration / 2)
    onset = g.uniform(0, duration - length)
    spectrum, bins = _power_spectrum(x, sr)
    low, high = freq * 2.0 ** (-1 / 12), freq * 2.0 ** (1 / 12)
    power = _band_sums(spectrum, bins, np.array([(low + high) / 2]), np.array([high - low]))[0]
    amplitude = np.sqrt(2 * power * 10 ** (g.uniform(*WHINE_DB) / 10))  # a sine's power is amplitude ** 2 / 2
    t = np.arange(n_samples) / sr
    envelope = np.clip(np.minimum(t - onset, onset + length - t) / WHINE_FADE_S, 0, 1)
    x += amplitude * envelope * np.sin(2 * np.pi * freq * t + g.uniform(0, 2 * np.pi))
    return freq, onset, onset + length


def _power_spectrum(x, sr):
    """One-sided power spectrum of ``x`` (its bins sum to the mean square) and its frequencies."""
    return np.abs(rfft(x)) ** 2 * (2 / x.size**2), rfftfreq(x.size, 1.0 / sr)


def _band_sums(spectrum, bins, centres, widths):
    """Sums of ``spectrum`` over ``widths`` Hz around ``centres`` (at least one bin each)."""
    cumulative = np.r_[0.0, np.cumsum(spectrum)]
    lo = np.minimum(np.searchsorted(bins, centres - widths / 2), bins.size - 1)
    hi = np.clip(np.searchsorted(bins, centres + widths / 2, side="right"), lo + 1, bins.size)
    return cumulative[hi] - cumulative[lo]


def _analysis_width(freqs):
    return np.maximum(BAND_HZ, BAND_REL * freqs)


def _top_band(freqs, change_db):
    """(low, high) Hz: the analysis bands around the ``freqs`` whose change is within BAND_TOP_DB of the largest."""
    top = freqs[change_db >= change_db.max() - BAND_TOP_DB]
    return (top - _analysis_width(top) / 2).min(), (top + _analysis_width(top) / 2).max()


def _harmonic_ratios(tone_info, background, sr):
    """Frequencies of the motor harmonics and their power over the background's in their analysis bands."""
    freqs = np.arange(1, tone_info["amplitudes"].size + 1) * tone_info["f0"]
    spectrum, bins = _power_spectrum(background, sr)
    background_power = np.maximum(_band_sums(spectrum, bins, freqs, _analysis_width(freqs)), 1e-30)
    return freqs, tone_info["amplitudes"] ** 2 / 2 / background_power


def _truth(kind, tone, background, tone_info, background_info, sr, local):
    """Onset and offset (s), band (low, high Hz) and whether the anomaly is one confined stretch,
    from the draws of ``_tone`` and ``_background`` and the clip's own tone and background."""
    duration = tone.size / sr
    if kind == "harmonic":  # the whole clip, at the changed partials
        partials = tone_info["partials"] * tone_info["f0"]
        return 0.0, duration, _top_band(partials, np.zeros(partials.size)), False
    if kind == "drift":  # from its start, growing to the end: the harmonics that stand out most
        freqs, ratio = _harmonic_ratios(tone_info, background, sr)  # and leave their bands furthest
        moved = 10 * np.log10(1 + ratio) * np.minimum(1, abs(tone_info["drift"]) * freqs / _analysis_width(freqs))
        return tone_info["start"], duration, _top_band(freqs, moved), False
    if kind == "dropout":  # the dropouts: the harmonics that stand out most above the background
        freqs, ratio = _harmonic_ratios(tone_info, background, sr)
        dropped = 10 * np.log10((1 + ratio) / (1 + max(tone_info["gate"], 1e-6) ** 2 * ratio))
        starts, ends = zip(*tone_info["intervals"])
        return min(starts), max(ends), _top_band(freqs, dropped), len(starts) == 1  # one with local=True
    if kind == "knock":  # first impact to the end of the last one's decay; where the loudest impact
        # (its structural resonance, or its click) most exceeds a frame of the normal sound
        times, kernel = background_info["times"], background_info["kernel"]
        centres = np.geomspace(50.0, 0.45 * sr, int(96 * np.log2(0.45 * sr / 50.0)) + 1)  # 1/96 octave apart
        widths = _analysis_width(centres)
        spectrum, bins = _power_spectrum(tone + background_info["quiet"], sr)
        frame = _band_sums(spectrum, bins, centres, widths) * KNOCK_FRAME_S * sr
        energy = _band_sums(np.abs(rfft(kernel, tone.size)) ** 2 * (2 / tone.size), bins, centres, widths)
        raised = 10 * np.log10(1 + background_info["peak"] ** 2 * energy / np.maximum(frame, 1e-30))
        offset = min(times.max() + kernel.size / sr, duration)
        return times.min(), offset, _top_band(centres, raised), local or len(times) == 1
    raise ValueError(kind)


def _clip(m, kind, seed, sr, local=False):
    """One clip and its truth: (waveform, (onset, offset, (band low, band high), local))."""
    g = np.random.default_rng(seed)
    tone, tone_info = _tone(m, kind, g, sr, local)
    background, background_info = _background(m, kind, g, sr, local)
    x = tone + background
    if kind == "normal":
        truth = (np.nan, np.nan, (np.nan, np.nan), False)
    elif kind == "whine":
        freq, onset, offset = _whine(x, g, sr)
        truth = (onset, offset, (freq * 2.0 ** (-1 / 12), freq * 2.0 ** (1 / 12)), True)
    else:
        truth = _truth(kind, tone, background, tone_info, background_info, sr, local)
    return x * (_db(g.uniform(*LOUDNESS_DBFS)) / np.sqrt(np.mean(x**2))), truth


def _check_count(value, name):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_names(value, name, allowed=None):
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{name} must be a non-empty string or a non-empty list of them, got {value!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{name} must not repeat a name, got {list(names)}")
    if allowed is not None and not set(names) <= set(allowed):
        raise ValueError(f"unknown {name} {sorted(set(names) - set(allowed))}; choose from {list(allowed)}")
    return tuple(names)


def make_machine_sounds(
    n_normal=100,
    n_anomaly=20,
    machine_ids=("id_00",),
    duration=10.0,
    sr=16000,
    anomaly_types=None,
    machine_type=None,
    random_state=None,
    return_X_y=False,
    local=False,
):
    """Generate machine-like sounds with labelled anomalies at the same loudness as the normals.

    Each machine ID is a harmonic motor tone, periodic mechanical clicks and coloured broadband
    noise, all with ID-specific parameters that depend only on the ID's name (so sets generated
    with different ``random_state`` come from the same machines). Normal clips vary slightly;
    anomalies are ``"harmonic"`` (half-order partials or a boosted group of harmonics),
    ``"drift"`` (the fundamental drifts), ``"knock"`` (irregular impacts), ``"dropout"``
    (the tone drops out for short stretches) and, on request, ``"whine"`` (a bearing whine: a pure
    tone for a while), each with a random severity. Every clip's RMS level is drawn from the same
    distribution (uniform in -34..-28 dBFS), so a loudness meter scores at chance while a model of
    the spectrum can find the anomalies. Each anomaly comes with where it is, in time and in
    frequency, read off its own random draws, to score detectors that localise anomalies.

    Parameters
    ----------
    n_normal : int, default=100
        Normal clips per machine ID.
    n_anomaly : int, default=20
        Anomalous clips per machine ID; the anomaly types take turns, so they are balanced.
    machine_ids : str or sequence of str, default=("id_00",)
        Names of the machines to generate.
    duration : float, default=10.0
        Clip length in seconds (at least 0.1).
    sr : int, default=16000
        Sample rate in Hz (at least 8000).
    anomaly_types : str or sequence of str, default=None
        Subset of ``("harmonic", "drift", "knock", "dropout", "whine")``; None means the first
        four (``"whine"`` came later: None keeps generating the clips it always did).
    machine_type : str, default=None
        None: every machine ID is its own design (fundamental anywhere in 50-320 Hz, its own
        harmonics, resonances and clicks), so IDs are easy to tell apart. A name: the IDs are
        units of one product, as in DCASE, whose design is drawn from this name; each ID
        deviates from it by a few times the normal clip-to-clip variation (fundamental 3 %,
        harmonic levels 2.5 dB, resonance frequencies 5 %, click rate 10 %, noise and click
        levels 1.5 dB; standard deviations). Telling such IDs apart takes the fine detail of
        the spectrum that the anomalies change.
    random_state : int, RandomState instance or None, default=None
        Seed for the clip-to-clip variation and the anomalies.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    local : bool, default=False
        Confine the anomalies that vary in time to one stretch of at most half the clip, for
        scoring where detectors place them: ``"knock"`` becomes 1 to 3 knocks within 0.2 to 1 s,
        ``"dropout"`` one dropout of 0.2 to 1 s (several 32 ms frames). ``"whine"`` is always
        local; ``"harmonic"`` (the whole clip) and ``"drift"`` (from a moment in the first half
        to the end) do not change. False gives the clips it always did: knocks at 0.3 to 2 per
        second and 1 to 4 dropouts of 0.04 to 0.4 s, anywhere in the clip.

    Returns
    -------
    data : Bunch
        ``data`` float32 waveforms of shape ``(n_clips, round(duration * sr))`` in [-1, 1];
        ``target`` int array, 1 = anomaly, 0 = normal; ``machine_id`` and ``anomaly_type``
        (``"normal"`` for normal clips) str arrays; ``sr``; ``DESCR``; and where each anomaly
        is (NaN, or False, for normal clips):

        - ``anomaly_onset``, ``anomaly_offset``: float arrays, the interval in seconds in which
          the anomaly is audible. ``"harmonic"``: 0 and the clip's duration; ``"drift"``: the
          moment the drift starts, and the end; ``"knock"``: the first impact, and the end of the
          last one's decay; ``"dropout"``: the start of the first dropout and the end of the last;
          ``"whine"``: its start and end (including the fades).
        - ``anomaly_local``: bool array, True where the anomaly is confined to that interval as
          one stretch of the clip, so that whether a detector's most anomalous segment overlaps
          it is meaningful: ``"whine"`` always; ``"knock"`` and ``"dropout"`` with ``local=True``
          or when only one knock or dropout was drawn (several, spread over the clip, leave
          normal sound in between). False for ``"harmonic"`` (the whole clip) and ``"drift"``,
          whose change grows steadily to the end over at least half the clip, so any late
          segment overlaps it: whole-clip anomalies count only for the band.
        - ``anomaly_band``: float array of shape ``(n_clips, 2)``, low and high Hz of the
          frequencies the anomaly changes most, where a spectrogram shows the largest change in
          dB. Each frequency f is taken with an analysis band max(25 Hz, 2.5 % of f) wide (about
          a band of a 128-band mel spectrogram at 16 kHz); the truth band spans the frequencies
          whose expected change is within 3 dB of the largest, plus half an analysis band on
          each side. ``"harmonic"``: the added half-order partials or the boosted harmonics (f0
          times their orders), all taken as changed alike; ``"dropout"``: the harmonics whose
          level drops most in the mix, those that stand out most above the background (noise
          and clicks), given the deepest drop; ``"drift"``: every harmonic moves by the same
          fraction, so the band is an estimate: the harmonics that stand out most above the
          background times how far out of their analysis band they move by the end; ``"knock"``:
          where the loudest impact's energy most exceeds that of a 64 ms frame of the clip's
          normal sound, mostly around its structural resonance, sometimes (also) its click
          higher up; ``"whine"``: its frequency +-1/12 octave. No anomaly type has a NaN band.

        Clips are ordered by machine ID, each ID's normals first.
    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from skasd.datasets import make_machine_sounds
    >>> sounds = make_machine_sounds(n_normal=4, n_anomaly=4, duration=1.0, random_state=0)
    >>> sounds.data.shape, sounds.data.dtype, sounds.sr
    ((8, 16000), dtype('float32'), 16000)
    >>> sounds.target.tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
    >>> sounds.anomaly_type[4:].tolist()
    ['harmonic', 'drift', 'knock', 'dropout']

    Where each anomaly is: with ``local=True``, knocks, dropouts and whines are confined to one
    stretch of the clip; a whine's band is its frequency +-1/12 octave.

    >>> sounds = make_machine_sounds(n_normal=1, n_anomaly=3, duration=2.0, local=True,
    ...                              anomaly_types=["harmonic", "knock", "whine"], random_state=0)
    >>> sounds.anomaly_local.tolist()
    [False, False, True, True]
    >>> sounds.anomaly_onset.round(2).tolist(), sounds.anomaly_offset.round(2).tolist()
    ([nan, 0.0, 0.82, 0.42], [nan, 2.0, 1.15, 1.42])
    >>> sounds.anomaly_band.round(-1).tolist()
    [[nan, nan], [930.0, 1720.0], [970.0, 1010.0], [1150.0, 1300.0]]
    """
    n_normal, n_anomaly = _check_count(n_normal, "n_normal"), _check_count(n_anomaly, "n_anomaly")
    if n_normal + n_anomaly == 0:
        raise ValueError("n_normal + n_anomaly must be at least 1, got 0 clips")
    machine_ids = _check_names(machine_ids, "machine_ids")
    if anomaly_types is None:
        anomaly_types = DEFAULT_ANOMALY_TYPES
    anomaly_types = _check_names(anomaly_types, "anomaly_types", ANOMALY_TYPES)
    if not isinstance(sr, numbers.Integral) or isinstance(sr, bool) or sr < MIN_SR:
        raise ValueError(f"sr must be an integer of at least {MIN_SR} Hz, got {sr!r}")
    if not isinstance(duration, numbers.Real) or not np.isfinite(duration) or duration < MIN_DURATION:
        raise ValueError(f"duration must be a number of seconds of at least {MIN_DURATION}, got {duration!r}")
    if machine_type is not None and not (isinstance(machine_type, str) and machine_type):
        raise ValueError(f"machine_type must be None or a non-empty string, got {machine_type!r}")
    if not isinstance(return_X_y, (bool, np.bool_)):
        raise ValueError(f"return_X_y must be True or False, got {return_X_y!r}")
    if not isinstance(local, (bool, np.bool_)):
        raise ValueError(f"local must be True or False, got {local!r}")
    rs = check_random_state(random_state)

    n_samples = int(round(duration * sr))
    kinds = ["normal"] * n_normal + [anomaly_types[i % len(anomaly_types)] for i in range(n_anomaly)]
    anomaly_type = np.array(kinds * len(machine_ids))
    machine_id = np.repeat(np.array(machine_ids), len(kinds))
    seeds = rs.randint(np.iinfo(np.int32).max, size=machine_id.size)
    machines = {name: _machine(name, n_samples, sr, machine_type) for name in machine_ids}
    data = np.empty((machine_id.size, n_samples), dtype=np.float32)
    onset, offset = np.full(machine_id.size, np.nan), np.full(machine_id.size, np.nan)
    band, is_local = np.full((machine_id.size, 2), np.nan), np.zeros(machine_id.size, dtype=bool)
    for i, (name, kind, seed) in enumerate(zip(machine_id, anomaly_type, seeds)):
        data[i], (onset[i], offset[i], band[i], is_local[i]) = _clip(machines[name], kind, seed, sr, local)
    target = (anomaly_type != "normal").astype(int)
    if return_X_y:
        return data, target
    return Bunch(
        data=data, target=target, machine_id=machine_id, anomaly_type=anomaly_type, anomaly_onset=onset,
        anomaly_offset=offset, anomaly_band=band, anomaly_local=is_local, sr=int(sr), DESCR=DESCR,
    )
