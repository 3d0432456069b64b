"""Feature extraction of a large list of clips as Dask tasks (``distributed``, optional)."""

from numbers import Integral

import numpy as np

__all__ = ["dask_transform"]


def _transform(transformer, chunk):
    return transformer.transform(chunk)


def dask_transform(transformer, X, *, client=None, chunk_size=256):
    """``transformer.transform(X)`` computed on a Dask cluster, one task per chunk of clips.

    The clips are cut into chunks of ``chunk_size`` (paths or waveforms, in order), each
    chunk is transformed by a worker with ``client.map``, and the results are gathered and
    concatenated in the order of ``X``: the output equals ``transformer.transform(X)``.
    Workers read the files themselves, so paths must be readable under the same names on
    every worker (a shared file system). With ``cache=DIR`` on a shared file system the
    workers also fill the feature cache, which later fits on any machine read back.

    Parameters
    ----------
    transformer : fitted transformer
        E.g. :class:`~skasd.LogMelTransformer` (stateless: no fit needed). It is pickled
        and sent to the workers with every task.
    X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)
        Clips, as accepted by ``transformer.transform``.
    client : distributed.Client, default=None
        Client of the cluster; ``None`` uses the current default client
        (``distributed.get_client()``).
    chunk_size : int, default=256
        Clips per task. A 10 s clip gives a 160 kB log-mel, so the default chunk returns
        about 40 MB; larger chunks mean fewer tasks and less scheduling overhead.

    Returns
    -------
    ndarray
        The concatenated output of the chunks, e.g. ``(n_clips, n_mels, n_frames)`` float32
        log-mels.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from skasd import LogMelTransformer
    >>> from skasd import dask_transform
    >>> X = np.random.default_rng(0).uniform(-0.1, 0.1, size=(6, 16000))  # six 1 s clips
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, \\
    ...         Client(cluster) as client:
    ...     logmel = dask_transform(LogMelTransformer(), X, client=client, chunk_size=4)
    >>> logmel.shape, np.array_equal(logmel, LogMelTransformer().transform(X))
    ((6, 128, 32), True)
    """
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dask_transform needs Dask's distributed scheduler: pip install 'dask[distributed]'"
        ) from exc
    if not isinstance(chunk_size, Integral) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError as exc:
            raise ValueError(
                "dask_transform found no Dask client: pass client=Client('tcp://scheduler:8786') "
                "or create a Client first."
            ) from exc
    if not isinstance(X, np.ndarray):
        X = list(X)  # a pandas Series or any sequence of paths/waveforms
    if len(X) == 0:
        raise ValueError("dask_transform got no clips (X is empty).")
    chunks = [X[i : i + chunk_size] for i in range(0, len(X), chunk_size)]
    # pure=False: the tasks need no content hash (hashing every waveform would cost time).
    futures = client.map(_transform, [transformer] * len(chunks), chunks, pure=False)
    parts = client.gather(futures)
    shapes = {part.shape[1:] for part in parts}
    if len(shapes) > 1:
        raise ValueError(
            f"The chunks of clips gave outputs of different shapes {sorted(shapes)}: the clips "
            "differ in length. Set the transformer's duration (e.g. duration=10.0) to crop or pad "
            "every clip to the same length."
        )
    return np.concatenate(parts)
