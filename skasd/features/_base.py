"""Base of the feature transformers: stateless transformers of audio clips (paths or waveforms)."""

from sklearn.base import BaseEstimator, TransformerMixin

from ._audio import _check_clips

__all__ = ["ClipTransformer"]


class ClipTransformer(TransformerMixin, BaseEstimator):
    """Base of the transformers whose input is audio clips (not for direct use).

    They learn nothing: ``fit`` checks the parameters (``_check_params``, by default the
    ``_parameter_constraints``) and the form of ``X``; ``transform`` decodes and computes.
    Subclasses set the dtype of their output in ``_output_dtype``.
    """

    _output_dtype = "float32"

    def _check_params(self):
        self._validate_params()

    def fit(self, X, y=None):
        """Check the parameters and the form of ``X``; nothing is learned.

        Parameters
        ----------
        X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)
            Checked for its form (and waveforms for NaN/inf); files are not read.
        y : ignored

        Returns
        -------
        self : object
            The transformer.
        """
        self._check_params()
        _check_clips(X)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.string = True  # paths
        tags.transformer_tags.preserves_dtype = [self._output_dtype]
        return tags
