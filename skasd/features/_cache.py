"""Per-clip feature cache on disk, shared by every transformer, fold, candidate and run.

Layout: ``<cache>/logmel-v<FORMAT>-<digest of the feature parameters>/`` holds a
``params.json`` (for people) and one ``<kk>/<clip key>.npz`` per clip: the float32
``(n_rows, n_frames)`` features and the clip key they belong to. A clip key is the SHA-256 of

- a file's resolved path, size, ``mtime_ns`` and inode (one ``stat``, no read: hashing the
  contents would read every file, and reading is most of the cost of decoding), or
- a waveform's float32 samples, as the features see them.

Entries are written to a temporary file and renamed into place (``atomic_path``),
so parallel workers only ever see whole entries. The ``.npz`` (zip) format stores a CRC-32
that numpy's loader checks, so a truncated, corrupt, foreign or wrong-shape entry is detected,
recomputed and overwritten, with one warning naming the entries.
"""

import hashlib
import json
import os
import warnings
import zipfile
import zlib

import numpy as np

from ..exceptions import AudioError
from ..utils._atomic import atomic_path, write_text_atomic
from ..utils._validation import listing
from ._audio import _check_clips

# Bump when what an entry holds changes (feature code, layout): old entries are then ignored.
FORMAT_VERSION = 1

# What a damaged entry raises in np.load / zipfile (a missing one raises FileNotFoundError).
_LOAD_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class FeatureCache:
    """Entries of one feature configuration under ``directory``.

    Parameters
    ----------
    directory : str or path-like
        Cache root, created on the first write.
    params : dict
        JSON-serialisable feature parameters; every value that changes the stored
        features must be here (and nothing else, or equal features are stored twice).
    """

    def __init__(self, directory, params):
        text = json.dumps({"format": FORMAT_VERSION, **params}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.root = os.path.join(os.fspath(directory), f"{params['features']}-v{FORMAT_VERSION}-{digest}")
        self.params_text = text

    @staticmethod
    def path_key(path):
        """Key of an audio file, or None when it cannot be stat-ed (decoding then reports why)."""
        try:
            real = os.path.realpath(os.fspath(path))
            st = os.stat(real)
        except OSError:
            return None
        identity = f"file\0{real}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
        return hashlib.sha256(identity.encode()).hexdigest()

    @staticmethod
    def waveform_key(w):
        """Key of a 1-D float32 waveform (its bytes; NaN never gets here: it fails validation)."""
        h = hashlib.sha256(b"wave\0")
        h.update(memoryview(np.ascontiguousarray(w, dtype=np.float32)).cast("B"))
        return h.hexdigest()

    def entry(self, key):
        return os.path.join(self.root, key[:2], key + ".npz")

    def get(self, key, shape):
        """The stored features of ``key``; None if absent; raises ValueError if damaged.

        ``shape`` is the expected ``(n_rows, n_frames)``; ``n_frames`` None accepts any.
        """
        try:
            with open(self.entry(key), "rb") as f:  # np.load(path) leaks it when the zip is broken
                z = np.load(f, allow_pickle=False)
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise ValueError("not an .npz file")
                stored_key, a = str(z["key"]), z["features"]  # reading checks the zip CRC
        except FileNotFoundError:
            return None
        except _LOAD_ERRORS as e:
            raise ValueError(f"unreadable ({type(e).__name__}: {e})") from e
        if stored_key != key:
            raise ValueError("holds another clip's features")
        if a.dtype != np.float32 or a.ndim != 2 or any(n not in (None, m) for n, m in zip(shape, a.shape)):
            raise ValueError(f"{a.dtype} array of shape {a.shape}, expected float32 {shape}")
        return a

    def put(self, key, features):
        """Store one clip's features atomically; a concurrent writer of the same key is harmless."""
        if not os.path.exists(os.path.join(self.root, "params.json")):
            write_text_atomic(os.path.join(self.root, "params.json"), self.params_text + "\n")
        with atomic_path(self.entry(key)) as tmp, open(tmp, "wb") as f:
            np.savez(f, features=features, key=np.array(key))  # a file object: no ".npz" appended


def cached_features(directory, params, X, *, load, compute, n_rows, n_frames=None):
    """Features of the clips ``X``, computing only those not in the cache, in one batch.

    Parameters
    ----------
    directory, params
        As in :class:`FeatureCache`.
    X : list of paths, list of 1-D arrays, or 2-D array of waveforms
    load : callable
        ``load(X)`` -> float32 ``(n_clips, n_samples)``: the transformer's own decoding and
        validation (``_load_batch`` with its parameters).
    compute : callable
        ``compute(W)`` -> float32 ``(n_clips, n_rows, n_frames)``: the feature backend.
    n_rows, n_frames : int or None, int or None
        Expected shape of one clip's features (None: any, e.g. ``n_frames`` when clip lengths are free).

    Returns
    -------
    ndarray of float32, shape (n_clips, n_rows, n_frames)
        Equal to ``compute(load(X))``. Clips of unequal length (no ``duration``) end in the
        same :class:`~skasd.AudioError` as without a cache.
    """
    cache = FeatureCache(directory, params)
    clips, W, keys, names = _keyed_clips(cache, X, load)

    out = None
    first = {}  # key -> first position holding it (filled or to be computed)
    missing = []  # positions to compute, one per distinct missing key
    damaged = []
    for i, key in enumerate(keys):
        if key is not None and key in first:
            continue
        if key is not None:
            first[key] = i
        a = _read_entry(cache, key, (n_rows, n_frames), names[i], damaged)
        if a is None:
            missing.append(i)
            continue
        if out is None:
            out = np.empty((len(keys), *a.shape), dtype=np.float32)
        elif a.shape != out.shape[1:]:
            return _uncached(load, compute, clips, W)
        out[i] = a
    if damaged:
        _warn_damaged(damaged)

    if missing:
        F = compute(W[missing] if W is not None else load([clips[i] for i in missing]))
        if out is None:
            out = np.empty((len(keys),) + F.shape[1:], dtype=np.float32)
        elif F.shape[1:] != out.shape[1:]:
            return _uncached(load, compute, clips, W)
        failed = []
        for i, f in zip(missing, F):
            out[i] = f
            if keys[i] is not None:
                try:
                    cache.put(keys[i], f)
                except OSError as e:  # read-only or full disk: still return the features
                    failed.append(f"{names[i]} ({e})")
        if failed:
            warnings.warn(
                f"could not write {len(failed)} feature cache entr{'y' if len(failed) == 1 else 'ies'} "
                f"under {cache.root}: {listing(failed)}",
                UserWarning,
                stacklevel=3,
            )
    for i, key in enumerate(keys):  # repeated clips
        if key is not None and first[key] != i:
            out[i] = out[first[key]]
    return out


def _keyed_clips(cache, X, load):
    """``(clips, W, keys, names)``: the checked clips, their waveforms when given in memory
    (else None: files are decoded only on a miss), one cache key and one display name each."""
    kind, clips = _check_clips(X, finite=False)
    if kind == "paths":
        return clips, None, [cache.path_key(p) for p in clips], [os.fspath(p) for p in clips]
    W = load(clips)  # in memory already: validates and warns as without a cache
    return clips, W, [cache.waveform_key(w) for w in W], [f"clip {i}" for i in range(len(W))]


def _read_entry(cache, key, shape, name, damaged):
    """The cached features under ``key`` (None if absent, unkeyed or damaged; a damaged
    entry is noted in ``damaged`` to be warned about once)."""
    if key is None:
        return None
    try:
        return cache.get(key, shape)
    except ValueError as e:
        damaged.append(f"{cache.entry(key)} ({name}: {e})")
        return None


def _uncached(load, compute, clips, W):
    """Clips of unequal length (no ``duration``): the uncached path raises its AudioError."""
    return compute(load(clips) if W is None else W)


def fill_cache(directory, params, X, *, load, compute, n_rows, n_frames=None, chunk=64):
    """Make sure every clip of ``X`` has a valid cache entry, computing the others in chunks.

    Like :func:`cached_features` but nothing is returned stacked: at most ``chunk`` clips'
    waveforms and features are in memory at once, so the cache can be filled for more clips
    than fit in memory. Damaged entries are recomputed with one warning.

    Returns
    -------
    cache : FeatureCache
    keys : list of str or None
        One key per clip of ``X`` (None for a file that could not be stat-ed but decoded).
    sources : list of paths, or float32 ndarray of shape (n_clips, n_samples)
        What recomputes a clip's features: its path, or its (validated) waveform.
    n_rows : int
        Rows per clip: ``n_rows`` when given, else those of the first clip read or computed.
    n_frames : int
        Frames per clip, the same for all (else the :class:`~skasd.AudioError` of unequal lengths).
    """
    cache = FeatureCache(directory, params)
    clips, W, keys, names = _keyed_clips(cache, X, load)
    sources = clips if W is None else W
    seen, damaged, failed = set(), [], []
    for start in range(0, len(keys), chunk):
        todo = []
        for i in range(start, min(start + chunk, len(keys))):
            key = keys[i]
            if key in seen:
                continue
            if key is not None:
                seen.add(key)
            a = _read_entry(cache, key, (n_rows, n_frames), names[i], damaged)
            if a is None:
                todo.append(i)
            else:
                n_rows, n_frames = a.shape
        if not todo:
            continue
        F = compute(load([clips[i] for i in todo]) if W is None else W[todo])
        if n_frames is not None and F.shape[2] != n_frames:
            raise AudioError(
                f"clips differ in length: {names[todo[0]]} and the clips after it give {F.shape[2]} "
                f"frames, earlier clips {n_frames}; pass duration= (seconds) to crop/zero-pad every "
                "clip to one length"
            )
        n_rows, n_frames = F.shape[1:]
        for i, f in zip(todo, F):
            if keys[i] is not None:
                try:
                    cache.put(keys[i], f)
                except OSError as e:
                    failed.append(f"{names[i]} ({e})")
    if damaged:
        _warn_damaged(damaged)
    if failed:
        warnings.warn(
            f"could not write {len(failed)} feature cache entr{'y' if len(failed) == 1 else 'ies'} under "
            f"{cache.root} (they are recomputed whenever read): {listing(failed)}",
            UserWarning,
            stacklevel=3,
        )
    return cache, keys, sources, n_rows, n_frames


def _warn_damaged(damaged, stacklevel=4):
    warnings.warn(
        f"{len(damaged)} feature cache entr{'y is' if len(damaged) == 1 else 'ies are'} corrupt, "
        f"truncated or of the wrong shape; recomputing: {listing(damaged)}",
        UserWarning,
        stacklevel=stacklevel,
    )
