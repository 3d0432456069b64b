"""The scored generated clips that the report tests render."""

import pytest


@pytest.fixture(scope="session")
def scored(tmp_path_factory):
    """Generated DCASE 2020 folder (2 IDs, 1 s clips), a DenseAE pipeline fitted on its train split,
    saved and loaded as the CLI does, and the test split's scores and decisions."""
    pytest.importorskip("matplotlib")
    from skasd.workflow import build_pipeline, load_model, save_model, score_clips
    from skasd.workflow import write_dcase_layout
    from skasd.datasets import make_machine_sounds

    root = tmp_path_factory.mktemp("gen")
    bunch = make_machine_sounds(n_normal=12, n_anomaly=4, machine_ids=("id_00", "id_02"), duration=1.0,
                                random_state=0)
    clips = write_dcase_layout(bunch, root / "data", machine_type="fan")
    pipe = build_pipeline("denseae", {"max_epochs": 2, "random_state": 0}, verbose=False)
    pipe.fit(list(clips.loc[clips["split"] == "train", "path"]))
    save_model(pipe, root / "model.joblib")
    pipe = load_model(root / "model.joblib", verbose=False)
    test = clips[clips["split"] == "test"].reset_index(drop=True)
    _, score, decision = score_clips(pipe, test)
    return {"root": root, "clips": test, "pipe": pipe, "score": score, "decision": decision}
