"""What the torch estimators train on: batches gathered from clips in memory or streamed from disk.

A clip is a ``(n_mels, n_frames)`` log-mel array. Two kinds of training items are cut from
clips, each in two forms:

- windows of ``width`` consecutive frames every ``hop`` frames, laid out ``(width, n_mels)``
  (frame-major, as the DCASE baseline concatenates frames): the autoencoders' items, whose
  target is the item itself. :class:`_WindowDataset` (clips in memory) and
  :class:`_ClipStream` (a :class:`~skasd.FeatureStore`).
- random crops of ``width`` frames with their class targets: :class:`ClassifierEmbedding`'s
  items. :class:`_CropDataset` and :class:`_CropStream`.

The in-memory datasets gather a whole batch with one fancy index (``__getitems__``); windows and
crops are never materialised for the whole dataset. The streams read the clips of a store
``buffer`` at a time, in a new random order each epoch, draw the items of each buffer in random
order (the next buffer is read in a thread meanwhile) and complete a partial batch from the next
buffer, so memory holds two buffers and a batch, not the dataset. When all training clips fit
in one buffer a stream yields the batches its in-memory counterpart yields under skorch's
``RandomSampler`` (same seed, same model).

:class:`_ClipSplit` is the validation split of both: whole clips, never items of one clip on
both sides.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

__all__ = ["_ClipSplit", "_ClipStream", "_CropDataset", "_CropStream", "_WindowDataset"]


def _n_windows(n_frames, width, hop):
    return (n_frames - width) // hop + 1


def _batch_as_is(batch):
    """collate_fn for datasets whose ``__getitems__`` already returns a batch."""
    return batch


def _read_finite(X, clips):
    """``X[clips]`` as float32, refusing NaN/inf (a FeatureStore is not validated up front)."""
    a = X[clips]
    if not np.isfinite(a).all():
        clips = np.arange(len(X))[clips] if isinstance(clips, slice) else np.asarray(clips)
        bad = clips[~np.isfinite(a).all(axis=(1, 2))]
        raise ValueError(f"Input X contains NaN or infinity: clip(s) {bad.tolist()[:10]} of {X!r}.")
    return a


def _mean_std(X, clips, chunk=64):
    """Mean and standard deviation (float64) of ``X[clips]`` (an array or a FeatureStore) in
    one pass over chunks of clips, without holding all of it."""
    total = squares = 0.0
    for start in range(0, len(clips), chunk):
        part = X[clips[start : start + chunk]].astype(np.float64)
        total += part.sum()
        squares += np.square(part).sum()
    n = len(clips) * X[0].size
    mean = total / n
    return float(mean), float(math.sqrt(max(squares / n - mean**2, 0.0))) or 1.0


class _ClipSplit:
    """skorch ``train_split``: hold out whole clips, never items of one clip on both sides.

    Stores only the clip indices, so the pickled net carries no data.
    """

    def __init__(self, train_clips, valid_clips):
        self.train_clips, self.valid_clips = train_clips, valid_clips

    def __call__(self, dataset, y=None, **fit_params):
        return dataset.subset(self.train_clips), dataset.subset(self.valid_clips, validation=True)


def _stream_loader(dataset, batch_size, shuffle=False, drop_last=False, **kwargs):
    """skorch ``iterator_train``/``iterator_valid`` for a stream (it batches itself)."""
    return torch.utils.data.DataLoader(
        dataset.batches(batch_size, shuffle, drop_last), batch_size=None, collate_fn=_batch_as_is
    )


# ------------------------------------------------------------------------------ windows
class _WindowDataset(torch.utils.data.Dataset):
    """Windows of ``width`` frames every ``hop`` frames of some clips, gathered on demand.

    ``X`` is the ``(n_clips, n_mels, n_frames)`` tensor of all clips, shared, never
    copied; ``clips`` selects the clips this dataset covers (all by default). Item ``i``
    is window ``i % n_windows`` of clip ``clips[i // n_windows]``. ``__getitems__`` gathers
    a whole batch with one fancy index and returns ``(windows, windows)``: the
    autoencoder's target is its input.
    """

    def __init__(self, X, width, hop, loc=0.0, scale=1.0, clips=None):
        self.X, self.width, self.hop, self.loc, self.scale = X, width, hop, loc, scale
        self.clips = torch.arange(len(X), device=X.device) if clips is None else clips
        self.frames = X.transpose(1, 2)  # (n_clips, n_frames, n_mels) view
        self.n_windows = _n_windows(X.shape[2], width, hop)
        self.offsets = torch.arange(width, device=X.device)

    def subset(self, clips, validation=False):
        """The same windows of the clips ``clips`` (indices into ``X``), sharing ``X``."""
        clips = torch.as_tensor(clips, device=self.X.device)
        return _WindowDataset(self.X, self.width, self.hop, self.loc, self.scale, clips)

    def __len__(self):
        return len(self.clips) * self.n_windows

    def windows(self, indices):
        """The standardised windows of the items ``indices``, ``(len(indices), width, n_mels)``."""
        i = torch.as_tensor(indices, device=self.offsets.device)
        clip, start = self.clips[i // self.n_windows], (i % self.n_windows) * self.hop
        w = self.frames[clip[:, None], start[:, None] + self.offsets]
        return (w - self.loc) / self.scale

    def __getitems__(self, indices):
        w = self.windows(indices)
        return w, w

    def __getitem__(self, i):
        w, _ = self.__getitems__([i])
        return w[0], w[0]


# -------------------------------------------------------------------------------- crops
class _CropDataset(torch.utils.data.Dataset):
    """Random crops of ``width`` frames with their one-hot (mixup: mixed) class targets.

    An epoch has ``n_crops`` items per clip (as many as non-overlapping crops fit in a
    clip), so that it sees about every frame once; ``clips`` selects the clips of ``X`` this
    dataset covers (all by default). ``__getitems__`` gathers a whole batch: random clip
    offsets, standardisation ``(x - loc) / scale``, the band of ``len(bands[0])`` mel bins
    selected by a random pseudo class (``bands[0]`` is the clip's own class, ``bands[j]`` its
    mel-shifted copy number ``j``: target ``code * len(bands) + j``), and with ``mixup > 0``
    each crop mixed with another crop of the batch by a ``Beta(mixup, mixup)`` weight,
    targets mixed alike. Randomness comes from torch's generator, which ``fit`` seeds. A
    validation subset draws crops the same way, without mixup.
    """

    def __init__(self, X, codes, n_classes, width, loc, scale, mixup, bands, clips=None):
        self.X, self.codes, self.width, self.loc, self.scale, self.mixup = X, codes, width, loc, scale, mixup
        self.n_classes = n_classes
        self.bands = bands  # (n_pseudo, n_bins) mel-bin indices
        self.n_targets = n_classes * len(bands)
        self.n_crops = max(1, X.shape[2] // width)
        self.clips = torch.arange(len(X), device=X.device) if clips is None else clips

    def subset(self, clips, validation=False):
        """The crops of the clips ``clips`` (indices into ``X``), sharing ``X``; no mixup for validation."""
        clips = torch.as_tensor(clips, device=self.X.device)
        mixup = 0.0 if validation else self.mixup
        return _CropDataset(self.X, self.codes, self.n_classes, self.width, self.loc, self.scale, mixup,
                            self.bands, clips)

    def __len__(self):
        return len(self.clips) * self.n_crops

    def crops(self, indices):
        """Standardised random crops of the items ``indices`` and their one-hot targets (no mixup)."""
        device = self.X.device
        clip = self.clips[torch.as_tensor(indices, device=device) // self.n_crops]
        start = torch.randint(0, self.X.shape[2] - self.width + 1, (len(clip),), device=device)
        pseudo = torch.randint(0, len(self.bands), (len(clip),), device=device)
        frames = start[:, None] + torch.arange(self.width, device=device)  # (b, width)
        bins = self.bands[pseudo]  # (b, n_bins)
        x = self.X[clip[:, None, None], bins[:, :, None], frames[:, None, :]]  # (b, n_bins, width)
        x = (x - self.loc) / self.scale
        codes = self.codes[clip] * len(self.bands) + pseudo
        return x, torch.nn.functional.one_hot(codes, self.n_targets).float()

    def batch(self, x, target):
        """The training batch of crops ``x`` and their ``target``: mixed up when ``mixup > 0``."""
        if self.mixup > 0 and len(x) > 1:
            device = x.device
            lam = torch.distributions.Beta(self.mixup, self.mixup).sample((len(x),)).to(device)
            perm = torch.randperm(len(x), device=device)
            x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm]
            target = lam[:, None] * target + (1 - lam[:, None]) * target[perm]
        return {"x": x, "target": target}, target

    def __getitems__(self, indices):
        return self.batch(*self.crops(indices))


# ------------------------------------------------------------------------------ streams
class _Stream(torch.utils.data.IterableDataset):
    """Items of the clips of a :class:`~skasd.FeatureStore`, streamed from disk in batches.

    The counterpart of an in-memory dataset for clips that are not in memory: iterating
    yields batches of ``batch_size`` items. The clips ``clips`` (indices into the store) are
    read ``buffer`` at a time; with ``shuffle`` the clip order is a new random permutation
    each epoch and the items of each buffer are shuffled, both drawn from a generator seeded
    from torch's global generator, as ``RandomSampler`` does (so a seeded fit is
    reproducible and a checkpoint's RNG state resumes it). A partial batch is completed from
    the next buffer; ``drop_last`` drops the final one.

    Subclasses implement ``_dataset(block, clips)`` (the in-memory dataset of one buffer),
    ``_part(dataset, indices)`` (its items ``indices``, as a tuple of tensors),
    ``_batch(dataset, part)`` (the batch skorch gets) and ``subset``.
    """

    def __init__(self, store, n_items, buffer, device, clips, validation=False):
        self.store, self.n_items, self.buffer, self.device = store, n_items, buffer, device
        self.clips = np.arange(len(store)) if clips is None else np.asarray(clips)
        self.validation = validation
        self.batch_size, self.shuffle, self.drop_last = 1, False, False

    def batches(self, batch_size, shuffle, drop_last):
        """A copy that iterates in batches of ``batch_size`` items."""
        out = self.subset(self.clips, self.validation)
        out.batch_size, out.shuffle, out.drop_last = batch_size, shuffle, drop_last
        return out

    def __len__(self):
        """Number of batches an epoch yields."""
        n, bs = len(self.clips) * self.n_items, self.batch_size
        return n // bs if self.drop_last else -(-n // bs)

    def __iter__(self):
        gen = None
        order = self.clips
        if self.shuffle:
            gen = torch.Generator()
            gen.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            if len(order) > self.buffer:
                order = order[torch.randperm(len(order), generator=gen).numpy()]
        pending = dataset = None
        for clips, block in self._buffers(order):
            dataset = self._dataset(block, clips)
            n = len(clips) * self.n_items
            idx = (torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)).to(self.device)
            pos = 0
            while pos < n:
                i = idx[pos : pos + self.batch_size - (0 if pending is None else len(pending[0]))]
                pos += len(i)
                part = self._part(dataset, i)
                if pending is not None:
                    part = tuple(torch.cat([a, b]) for a, b in zip(pending, part))
                if len(part[0]) == self.batch_size:
                    pending = None
                    yield self._batch(dataset, part)
                else:
                    pending = part
        if pending is not None and not self.drop_last:
            yield self._batch(dataset, pending)

    def _buffers(self, order):
        """``(clips, their features)`` buffer by buffer; the next buffer is read in a thread
        while the current one trains (torch releases the GIL), so up to two are in memory."""
        blocks = [order[start : start + self.buffer] for start in range(0, len(order), self.buffer)]
        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(_read_finite, self.store, blocks[0])
            for k, clips in enumerate(blocks):
                block = ahead.result()
                if k + 1 < len(blocks):
                    ahead = pool.submit(_read_finite, self.store, blocks[k + 1])
                yield clips, block


class _ClipStream(_Stream):
    """The windows of :class:`_WindowDataset` for the clips of a FeatureStore, streamed:
    yields ``(windows, windows)`` batches."""

    def __init__(self, store, width, hop, loc=0.0, scale=1.0, buffer=256, device="cpu", clips=None,
                 validation=False):
        super().__init__(store, _n_windows(store.shape[2], width, hop), buffer, device, clips, validation)
        self.width, self.hop, self.loc, self.scale = width, hop, loc, scale

    def subset(self, clips, validation=False):
        """The same windows of the clips ``clips`` (indices into the store)."""
        return _ClipStream(self.store, self.width, self.hop, self.loc, self.scale, self.buffer, self.device,
                           clips, validation)

    def _dataset(self, block, clips):
        return _WindowDataset(torch.from_numpy(block).to(self.device), self.width, self.hop, self.loc, self.scale)

    def _part(self, dataset, indices):
        return (dataset.windows(indices),)

    def _batch(self, dataset, part):
        return part[0], part[0]


class _CropStream(_Stream):
    """The random crops of :class:`_CropDataset` for the clips of a FeatureStore, streamed:
    ``codes`` holds the class code of every clip of the store. Mixup mixes the crops of each
    whole batch, also of one completed from two buffers."""

    def __init__(self, store, codes, n_classes, width, loc, scale, mixup, bands, buffer=256, device="cpu",
                 clips=None, validation=False):
        super().__init__(store, max(1, store.shape[2] // width), buffer, device, clips, validation)
        self.codes, self.n_classes, self.width, self.loc, self.scale = codes, n_classes, width, loc, scale
        self.mixup, self.bands = (0.0 if validation else mixup), bands

    def subset(self, clips, validation=False):
        """The crops of the clips ``clips`` (indices into the store); no mixup for validation."""
        return _CropStream(self.store, self.codes, self.n_classes, self.width, self.loc, self.scale, self.mixup,
                           self.bands, self.buffer, self.device, clips, validation)

    def _dataset(self, block, clips):
        codes = self.codes[torch.as_tensor(clips, device=self.codes.device)]
        return _CropDataset(torch.from_numpy(block).to(self.device), codes, self.n_classes, self.width, self.loc,
                            self.scale, self.mixup, self.bands)

    def _part(self, dataset, indices):
        return dataset.crops(indices)

    def _batch(self, dataset, part):
        return dataset.batch(*part)
