"""DCASE output files: the official submission files (anomaly scores and decisions per machine
ID / section) and the baseline's ``result.csv`` (AUC / pAUC per ID / section)."""

from pathlib import Path

import numpy as np

from ..utils._atomic import write_text_atomic
from ..utils._validation import check_scores

__all__ = ["result_csv", "submission_file_names", "write_submission"]


def submission_file_names(machine_type, section_or_id):
    """Return the official (score file, decision file) names for one group.

    DCASE 2020 (``section_or_id`` like ``"id_00"``) has a score file only, so the
    decision file name is ``None``; DCASE 2021+ (``"section_00"``) has both.

    Examples
    --------
    >>> submission_file_names("slider", "id_00")
    ('anomaly_score_slider_id_00.csv', None)
    >>> submission_file_names("fan", "section_01")
    ('anomaly_score_fan_section_01_test.csv', 'decision_result_fan_section_01_test.csv')
    """
    if str(section_or_id).startswith("id_"):
        return f"anomaly_score_{machine_type}_{section_or_id}.csv", None
    stem = f"{machine_type}_{section_or_id}_test.csv"
    return f"anomaly_score_{stem}", f"decision_result_{stem}"


def write_submission(clips, anomaly_score, out_dir, decision=None):
    """Write the official DCASE files, one per machine type and ID/section.

    Rows are ``<file name>,<value>`` with no header, in the order of ``clips``.
    Each file is written atomically.

    Parameters
    ----------
    clips : pandas.DataFrame
        Rows of :func:`skasd.datasets.load_dcase` (columns ``path``,
        ``machine_type``, ``section_or_id``).
    anomaly_score : array-like of shape (n_clips,)
        Higher = more anomalous (``estimator.anomaly_score``).
    out_dir : str or path-like
        Folder to write into (created if needed).
    decision : array-like of shape (n_clips,), default=None
        ``estimator.predict`` output (1 = normal, -1 = anomaly); written as the
        DCASE 2021+ ``decision_result`` files with 1 = anomaly, 0 = normal.

    Returns
    -------
    written : list of pathlib.Path
        The files written.
    """
    score = check_scores(anomaly_score, len(clips), name="anomaly_score", names=list(clips["path"]))
    flag = None if decision is None else (np.asarray(decision) == -1).astype(int)
    names = clips["path"].map(lambda p: Path(p).name).to_numpy()
    out_dir = Path(out_dir)
    written = []
    for (mtype, group), idx in clips.groupby(["machine_type", "section_or_id"], sort=True).indices.items():
        score_name, decision_name = submission_file_names(mtype, group)
        lines = "".join(f"{n},{s!r}\n" for n, s in zip(names[idx], score[idx].tolist()))
        write_text_atomic(out_dir / score_name, lines)
        written.append(out_dir / score_name)
        if decision_name is not None and flag is not None:
            lines = "".join(f"{n},{d}\n" for n, d in zip(names[idx], flag[idx].tolist()))
            write_text_atomic(out_dir / decision_name, lines)
            written.append(out_dir / decision_name)
    return written


def result_csv(reports):
    """The DCASE baselines' ``result.csv`` text from ``{machine_type: table}``.

    A table with domain columns (:func:`skasd.metrics.dcase_result_table`) gives the DCASE
    2022-2024 layout: the machine type, the header ``section,AUC (source),AUC (target),pAUC,
    ...``, one row per section (``00``), then ``arithmetic mean`` and ``harmonic mean``. A
    :func:`skasd.metrics.dcase_report` without domains gives the DCASE 2020 one: the header
    ``id,AUC,pAUC`` (``section,AUC,pAUC`` for sections), one row per ID and ``Average``.
    """
    lines = []
    for mtype, rep in reports.items():
        if "AUC (source)" in rep.columns:
            lines += [mtype, ",".join(["section", *rep.columns])]
            for group, row in rep.iterrows():
                name = group if group in ("arithmetic mean", "harmonic mean") else str(group).split("_", 1)[1]
                lines.append(",".join([name, *(repr(float(v)) for v in row)]))
            lines.append("")
            continue
        kind = "id" if str(rep.index[0]).startswith("id_") else "section"
        lines += [mtype, f"{kind},AUC,pAUC"]
        for group, row in rep.iterrows():
            values = f"{float(row['AUC'])!r},{float(row['pAUC'])!r}"
            if group == "arithmetic mean":
                lines.append(f"Average,{values}")
            elif group != "harmonic mean":
                lines.append(f"{str(group).split('_', 1)[1]},{values}")
        lines.append("")
    return "\n".join(lines)
