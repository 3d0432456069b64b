"""load_clips: a watch log is scored, never trained on."""

import pytest

from skasd.exceptions import UsageError
from skasd.workflow import load_clips


@pytest.mark.parametrize("split", ["train", None])
def test_a_watch_log_is_refused_as_training_clips(tmp_path, split):
    log = tmp_path / "w.jsonl"
    log.write_text('{"path": "/x/a.wav", "score": 1.0, "flagged": true}\n')
    with pytest.raises(UsageError, match="is a watch log: .*not normal training clips"):
        load_clips(log, split=split)
