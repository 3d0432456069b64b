"""Cross-validation splitters for detectors trained on normal clips only."""

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator, KFold, StratifiedKFold
from sklearn.utils import indexable

from ..utils._validation import check_anomaly_labels


class NormalTrainCV(BaseCrossValidator):
    """K-fold over the normal clips; anomalies are tested in every fold, never trained on.

    The normal clips (y == 0) are split into ``n_splits`` folds as
    :class:`~sklearn.model_selection.KFold` would split them. Split ``k``
    trains on the normals outside fold ``k`` and tests on the normals of
    fold ``k`` plus **all** anomalies (y == 1). So every training fold holds
    only normals, every test fold holds both classes, and every normal clip
    is tested exactly once.

    When ``groups`` (machine IDs or sections) are given, the normal folds are
    stratified per group (:class:`~sklearn.model_selection.StratifiedKFold`
    on the group labels), so every group appears in every training and test
    fold; each group then needs at least ``n_splits`` normal clips.
    ``groups`` reaches ``split`` from ``GridSearchCV.fit(X, y, groups=ids)``;
    with metadata routing enabled it is requested by default, and
    ``cv.set_split_request(groups="machine_id")`` takes it from a
    ``machine_id`` argument instead.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds of the normal clips, at least 2.
    shuffle : bool, default=True
        Shuffle the normals (within each group) before folding.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffling; must be None when ``shuffle=False``.

    See Also
    --------
    DCASESplit : The dataset's own train/test split.

    Examples
    --------
    >>> import numpy as np
    >>> from skasd.model_selection import NormalTrainCV
    >>> y = np.array([0, 0, 0, 0, 1, 1])
    >>> for train, test in NormalTrainCV(n_splits=2, random_state=0).split(y, y):
    ...     print(train, test)
    [0 1] [2 3 4 5]
    [2 3] [0 1 4 5]
    """

    # Request `groups` by default under metadata routing, as GroupKFold does.
    __metadata_request__split = {"groups": True}

    def __init__(self, n_splits=5, *, shuffle=True, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits, ``n_splits``.

        Parameters
        ----------
        X, y, groups : object
            Ignored, for API compatibility.

        Returns
        -------
        n_splits : int
        """
        self._check_n_splits()
        return self.n_splits

    def _check_n_splits(self):
        if isinstance(self.n_splits, bool) or not isinstance(self.n_splits, Integral):
            raise ValueError(f"n_splits must be an integer, got {self.n_splits!r}.")
        if self.n_splits < 2:
            raise ValueError(f"n_splits must be at least 2, got {self.n_splits}.")

    def split(self, X, y=None, groups=None):
        """Generate train/test indices.

        Parameters
        ----------
        X : array-like of shape (n_clips, ...) or list of paths
            The clips; only their number is used.
        y : array-like of shape (n_clips,)
            1 or ``"anomaly"`` = anomaly, 0 or ``"normal"`` = normal. Required.
        groups : array-like of shape (n_clips,), default=None
            Machine ID or section per clip; stratifies the normal folds.

        Yields
        ------
        train : ndarray
            Indices of the training normals.
        test : ndarray
            Indices of the held-out normals and all anomalies.
        """
        # BaseCrossValidator.split yields (complement of test, test): the
        # complement of "fold-k normals + all anomalies" is the other normals.
        return super().split(X, y, groups)

    def _iter_test_indices(self, X, y=None, groups=None):
        self._check_n_splits()
        if y is None:
            raise ValueError(
                "NormalTrainCV needs y (1 = anomaly, 0 = normal) to keep anomalies"
                " out of the training folds."
            )
        y = check_anomaly_labels(y, name="y")
        normals = np.flatnonzero(y == 0)
        anomalies = np.flatnonzero(y == 1)
        if anomalies.size == 0:
            raise ValueError(
                "y holds no anomalies, so no test fold could contain both classes;"
                " NormalTrainCV needs labelled anomalies to evaluate on."
            )
        if normals.size < self.n_splits:
            raise ValueError(
                f"NormalTrainCV(n_splits={self.n_splits}) needs at least {self.n_splits}"
                f" normal clips, got {normals.size}."
            )
        random_state = self.random_state if self.shuffle else None
        if not self.shuffle and self.random_state is not None:
            raise ValueError(
                "Setting random_state has no effect when shuffle=False; leave it None."
            )
        if groups is None:
            folds = KFold(self.n_splits, shuffle=self.shuffle, random_state=random_state)
            normal_folds = folds.split(normals)
        else:
            groups = np.asarray(groups)
            strata = groups[normals]
            names = np.unique(groups)
            small = names[[np.sum(strata == name) < self.n_splits for name in names]]
            if small.size:
                raise ValueError(
                    f"groups {small[:5].tolist()} have fewer than n_splits={self.n_splits}"
                    " normal clips; with groups, every group must have a normal clip in"
                    " every fold."
                )
            folds = StratifiedKFold(self.n_splits, shuffle=self.shuffle, random_state=random_state)
            normal_folds = folds.split(normals, strata)
        for _, test in normal_folds:
            yield np.sort(np.concatenate([normals[test], anomalies]))


class DCASESplit(BaseCrossValidator):
    """The dataset's own train/test split, as one predefined split.

    The training set is the clips of the ``"train"`` folder that are normal
    (all ``"train"`` clips when ``y`` is None); the test set is the clips of
    the ``"test"`` folder. Anomalies in the train folder (none in DCASE data)
    are in neither set.

    Parameters
    ----------
    folds : array-like of shape (n_clips,)
        ``"train"`` or ``"test"`` per clip, e.g. ``load_dcase(root)["split"]``.

    See Also
    --------
    NormalTrainCV : Cross-validation over the normal clips.

    Examples
    --------
    >>> from skasd.model_selection import DCASESplit
    >>> folds = ["train", "train", "train", "test", "test"]
    >>> y = ["normal", "normal", "normal", "normal", "anomaly"]
    >>> next(DCASESplit(folds).split(y, y))
    (array([0, 1, 2]), array([3, 4]))
    """

    def __init__(self, folds):
        self.folds = folds

    @classmethod
    def from_frame(cls, frame):
        """Build the split from a :func:`skasd.datasets.load_dcase` DataFrame.

        Parameters
        ----------
        frame : pandas.DataFrame
            With a ``split`` column of ``"train"``/``"test"``.

        Returns
        -------
        cv : DCASESplit
        """
        if "split" not in getattr(frame, "columns", ()):
            raise ValueError("from_frame needs a DataFrame with a 'split' column (train/test).")
        return cls(frame["split"].to_numpy())

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits: 1.

        Parameters
        ----------
        X, y, groups : object
            Ignored, for API compatibility.

        Returns
        -------
        n_splits : int
        """
        return 1

    def split(self, X, y=None, groups=None):
        """Yield the single (train, test) pair.

        Parameters
        ----------
        X : array-like of shape (n_clips, ...) or list of paths
            The clips; only their number is used.
        y : array-like of shape (n_clips,), default=None
            1 or ``"anomaly"`` = anomaly, 0 or ``"normal"`` = normal; when
            given, train-folder anomalies are left out of training.
        groups : object
            Ignored.

        Yields
        ------
        train : ndarray
            Indices of the train-folder normals.
        test : ndarray
            Indices of the test-folder clips.
        """
        X, y = indexable(X, y)
        folds = np.asarray(self.folds, dtype=object)
        n_samples = len(X)
        if folds.ndim != 1 or len(folds) != n_samples:
            raise ValueError(
                f"DCASESplit got {len(folds) if folds.ndim == 1 else folds.shape} fold"
                f" labels for {n_samples} clips; give one 'train'/'test' per clip."
            )
        unknown = [f for f in pd.unique(folds) if f not in ("train", "test")]
        if unknown:
            raise ValueError(f"DCASESplit folds must be 'train' or 'test'; found {unknown[:5]!r}.")
        is_train = folds == "train"
        if y is not None:
            is_train &= check_anomaly_labels(y, name="y") == 0
        train, test = np.flatnonzero(is_train), np.flatnonzero(folds == "test")
        if train.size == 0:
            raise ValueError("DCASESplit has no training clips (normal clips of 'train').")
        if test.size == 0:
            raise ValueError("DCASESplit has no 'test' clips.")
        yield train, test
