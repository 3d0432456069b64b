"""FeatureStore: the features of more clips than fit in memory, read from the feature cache on demand."""

import os
import warnings
from numbers import Integral

import numpy as np

from ..utils._validation import listing

__all__ = ["FeatureStore", "StoreSteps"]


class StoreSteps:
    """What a :class:`FeatureStore` needs of the transformer that made it: decode clips as its
    ``transform`` does (``load``), compute the stored features from waveforms (``compute``: how a
    lost entry is recomputed), turn stored features into the output (``finish``, default the
    identity), and the rows returned per clip (``n_bands``, default the rows stored).

    Holds a copy of the transformer (so the store keeps its settings) and the *names* of its
    methods, looked up at each call: the store then pickles small (the copy once, no bound
    methods) and goes to joblib or Dask workers that see the same cache folder.
    """

    def __init__(self, transformer, *, load, compute, finish=None, n_bands=None):
        self.transformer = transformer
        self._names = (load, compute, finish)
        self.n_bands = n_bands

    def load(self, X):
        return getattr(self.transformer, self._names[0])(X)

    def compute(self, W):
        return getattr(self.transformer, self._names[1])(W)

    def finish(self, features):
        return features if self._names[2] is None else getattr(self.transformer, self._names[2])(features)


class FeatureStore:
    """Read-only, lazily loaded features of many clips, backed by the feature cache on disk.

    Returned by ``LogMelTransformer(cache=DIR, lazy=True).transform(paths)`` (or
    :class:`MFCCTransformer`, or ``PretrainedEmbedding(cache=DIR, pooling=None, lazy=True)``:
    ``n_bands`` is then the embedding's values and ``n_frames`` its time steps); not built directly. It behaves like the read-only float32 array
    ``(n_clips, n_bands, n_frames)`` that ``transform`` would return without ``lazy``, but holds
    only the clips' cache keys: indexing reads the entries it needs from disk. The autoencoder
    detectors train on it through a streaming ``DataLoader`` and score it chunk by chunk, so
    memory is bounded by their buffer and batch, not by the number of clips.

    Indexing follows numpy: ``store[i]`` is one clip ``(n_bands, n_frames)``; a slice, an integer
    array or a boolean mask gives the stacked clips ``(k, n_bands, n_frames)``; ``store[idx, ...]``
    and further indices apply to that array. ``np.asarray(store)`` reads everything into memory.

    Attributes
    ----------
    shape : tuple of int
        ``(n_clips, n_bands, n_frames)``.
    dtype : numpy.dtype
        float32.
    ndim : int
        3.
    nbytes : int
        Size of the whole array if it were read into memory.

    Notes
    -----
    The store reads what was cached when ``transform`` made it (clip keys are fixed then). An
    entry that has since disappeared or been damaged is recomputed from its file (or waveform)
    and written back, with one warning. A store pickles small (paths and keys, no features), so
    it can be sent to joblib or Dask workers that see the same cache folder.

    In a search, put the transformer in the pipeline
    (``make_pipeline(LogMelTransformer(cache=DIR, lazy=True), DenseAE())``): each fold then
    streams its own store. A store passed to ``GridSearchCV`` directly is indexed by the
    splitter, which reads each fold's clips into an array.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from skasd import LogMelTransformer
    >>> X = np.random.default_rng(0).uniform(-0.1, 0.1, size=(5, 16000))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     store = LogMelTransformer(cache=folder, lazy=True).transform(X)
    ...     print(len(store), store.shape, store[[0, 2]].shape)
    ...     np.array_equal(store[1:3], LogMelTransformer().transform(X)[1:3])
    5 (5, 128, 32) (2, 128, 32)
    True
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, cache, keys, sources, n_rows, n_frames, *, steps, index=None):
        # cache, keys, sources, n_rows, n_frames: what fill_cache returned; steps: a StoreSteps
        # (to recompute a lost entry and to finish what is read)
        self._cache = cache
        self._keys = keys
        self._sources = sources
        self._n_rows = n_rows
        self._n_frames = n_frames
        self._steps = steps
        self._index = np.arange(len(keys)) if index is None else index
        self.shape = (len(self._index), n_rows if steps.n_bands is None else steps.n_bands, n_frames)

    def __len__(self):
        return self.shape[0]

    @property
    def nbytes(self):
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __repr__(self):
        return f"FeatureStore(shape={self.shape}, cache={self._cache.root!r})"

    def subset(self, indices):
        """A store of the clips ``indices`` (integers or a boolean mask), reading nothing."""
        return FeatureStore(
            self._cache, self._keys, self._sources, self._n_rows, self._n_frames, steps=self._steps,
            index=self._index[self._positions(indices)],
        )

    def _positions(self, key):
        """Positions (into this store) selected by an integer array, boolean mask or slice."""
        n = len(self)
        if isinstance(key, slice):
            return np.arange(n)[key]
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (n,):
                raise IndexError(f"boolean index of shape {key.shape} does not match the {n} clips")
            return np.flatnonzero(key)
        if key.ndim != 1 or (key.size and key.dtype.kind not in "iu"):
            raise IndexError(f"index clips with an integer, a slice, a 1-D integer array or a mask; got {key!r}")
        key = key.astype(np.intp)
        if key.size and (key.min() < -n or key.max() >= n):
            raise IndexError(f"clip index out of range for a FeatureStore of {n} clips")
        return np.where(key < 0, key + n, key)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if not key:
                return self[:]
            first, rest = key[0], key[1:]
            out = self[first]
            return out[rest] if isinstance(first, Integral) else out[(slice(None), *rest)]
        if isinstance(key, Integral):
            if not -len(self) <= key < len(self):
                raise IndexError(f"clip {key} out of range for a FeatureStore of {len(self)} clips")
            return self._read(self._index[[int(key)]])[0]
        return self._read(self._index[self._positions(key)])

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def _read(self, rows):
        """Stacked features of the underlying clips ``rows``; recomputes missing entries."""
        out = np.empty((len(rows), self._n_rows, self._n_frames), dtype=np.float32)
        redo, problems = [], []
        for j, r in enumerate(rows):
            key = self._keys[r]
            try:
                a = None if key is None else self._cache.get(key, (self._n_rows, self._n_frames))
                why = "missing" if key is not None else "not cacheable"
            except ValueError as e:
                a, why = None, str(e)
            if a is None:
                redo.append(j)
                problems.append(f"{self._name(r)} ({why})")
            else:
                out[j] = a
        if redo:
            self._recompute(rows, redo, out, problems)
        return self._steps.finish(out)

    def _name(self, r):
        return os.fspath(self._sources[r]) if isinstance(self._sources, list) else f"clip {r}"

    def _recompute(self, rows, redo, out, problems):
        warnings.warn(
            f"recomputing {len(redo)} clip(s) whose feature cache entries are missing or damaged: "
            f"{listing(problems)}",
            UserWarning,
            stacklevel=4,
        )
        src = [rows[j] for j in redo]
        W = self._steps.load([self._sources[r] for r in src]) if isinstance(self._sources, list) else self._sources[src]
        F = self._steps.compute(W)
        if F.shape[1:] != out.shape[1:]:
            raise ValueError(
                f"the features of {self._name(src[0])} now have shape {F.shape[1:]}, not {out.shape[1:]} "
                "as when this FeatureStore was made: the file changed; transform the clips again"
            )
        for j, r, f in zip(redo, src, F):
            out[j] = f
            if self._keys[r] is not None:
                try:
                    self._cache.put(self._keys[r], f)
                except OSError:
                    pass  # fill_cache warned already; the features are still returned
