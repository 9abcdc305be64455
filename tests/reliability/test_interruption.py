"""Interruptions: a training run SIGKILLed in the middle of an epoch resumes to the model
an uninterrupted run gives; an export killed while it writes, or between the renames that
swap it in, keeps the previous export; a full disk while checkpointing gives a clear error,
keeps the previous checkpoint and the run resumes once there is space again."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from faultkit import TALLY, run_cli, run_python, sha256, train_args, tree_digest

from visionkit.models.saving import load_model

# Runs ``visionkit ARGS`` and SIGKILLs itself at the point VK_KILL names:
#   batch:E:B      after training batch B of epoch E (0-based), i.e. mid-epoch
#   export-write   half-way through writing the first TFLite file of an export
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    where = os.environ["VK_KILL"]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if where.startswith("batch:"):
        from visionkit.train import callbacks as cb

        _, kill_epoch, kill_batch = where.split(":")
        begin = cb.DataEpoch.on_epoch_begin

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_now = epoch
            begin(self, epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch_now == int(kill_epoch) and batch == int(kill_batch):
                die()

        cb.DataEpoch.on_epoch_begin = on_epoch_begin
        cb.DataEpoch.on_train_batch_end = on_train_batch_end
    elif where == "export-write":
        import visionkit.export.tflite as tflite

        convert = tflite.convert_saved_model

        def convert_then_die(source, *args, **kwargs):
            content = convert(source, *args, **kwargs)
            partial = Path(source).parent / "model_fp32.tflite"  # in the staging folder
            partial.write_bytes(content[: len(content) // 2])
            die()

        tflite.convert_saved_model = convert_then_die
    else:
        raise SystemExit(f"unknown VK_KILL={where}")

    from visionkit.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


def _epochs(run: Path) -> list[int]:
    with open(run / "history.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, layout_data, capsys):
    """A 4-epoch run is SIGKILLed after the 4th training batch of its 3rd epoch (a separate
    process, killed for real: no cleanup runs). ``resume=true`` continues from the backup
    of the end of the 2nd epoch without redoing the first two, and ends with 4 epochs and
    the weights, validation loss and accuracy of an uninterrupted run with the same seed
    (to 1e-4)."""
    runs = tmp_path / "runs"
    settings = {"epochs": 4, "batch": 8, "cache": "false", "augment": "false", "seed": 3}
    whole = run_cli(
        capsys, "classify", "train", *train_args(layout_data, runs, "whole", **settings)
    )
    assert whole.code == 0, whole.err
    keras.backend.clear_session()

    cut_args = train_args(layout_data, runs, "cut", **settings)
    killed = run_python(DRIVER, "classify", "train", *cut_args, VK_KILL="batch:2:3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    cut = runs / "cut"
    assert _epochs(cut) == [0, 1]  # epoch 2 was under way
    assert (cut / "state" / "backup_train").is_dir()
    load_model(cut / "model.keras", compile=False)  # the best checkpoint so far is whole
    before = _history(cut)

    resumed = run_cli(capsys, "classify", "train", *cut_args, "resume=true")
    assert resumed.code == 0, resumed.err
    assert _epochs(cut) == [0, 1, 2, 3]
    assert _history(cut)[:2] == before  # epochs 0 and 1 were not trained again
    a = load_model(runs / "whole" / "model.keras", compile=False)
    b = load_model(cut / "model.keras", compile=False)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-4)
    last_whole, last_cut = _history(runs / "whole")[-1], _history(cut)[-1]
    assert float(last_cut["val_loss"]) == pytest.approx(float(last_whole["val_loss"]), abs=1e-4)
    metrics_whole = json.loads((runs / "whole" / "metrics.json").read_text())
    metrics_cut = json.loads((cut / "metrics.json").read_text())
    assert metrics_cut["accuracy"] == pytest.approx(metrics_whole["accuracy"])
    TALLY.add("interruption", sigkills=1, runs=2, survived=2, epochs_lost=0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_run) -> Path:
    """A copy of the trained run with a finished ``export/`` (TFLite fp32)."""
    from visionkit.export import export_run

    run = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export", ".export*"))
    export_run(run, ["tflite_fp32"], progress=False, latency_runs=1)
    keras.backend.clear_session()
    return run


def _visible(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if not p.name.startswith("."))


def test_sigkill_while_an_export_writes_keeps_the_previous_export(tmp_path, exported):
    """``visionkit classify export`` SIGKILLed half-way through writing a TFLite file: the
    previous ``export/`` is byte-for-byte intact and loads, and no partial export is
    visible in the run folder."""
    from visionkit.export import load_predictor

    run = tmp_path / "run"
    shutil.copytree(exported, run)
    before, listing = tree_digest(run / "export"), _visible(run)
    args = ["classify", "export", f"model={run}", "formats=tflite_fp32,tflite_fp16", "verbose=0"]
    killed = run_python(DRIVER, *args, VK_KILL="export-write")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert tree_digest(run / "export") == before
    assert _visible(run) == listing
    predictor = load_predictor(run / "export" / "model_fp32.tflite")
    out = predictor(np.zeros((1, 32, 32, 3), np.uint8))
    assert np.asarray(out).shape == (1, 3)
    stale = [p.name for p in run.iterdir() if p.name.startswith(".export.")]
    TALLY.add("interruption", sigkills=1, exports_intact=1, hidden_staging_left=len(stale))


class _SimulatedKill(BaseException):
    """A SIGKILL at a precise instant, in-process: no handler surrounds the two renames
    of ``atomic_directory``, so raising there leaves the files exactly as a kill would (a
    timer cannot aim a real kill at a window of microseconds)."""


def test_a_kill_between_the_two_renames_of_the_export_swap_keeps_an_export(
    tmp_path, exported, monkeypatch
):
    """A kill landing after the old ``export/`` was moved aside and before the new one
    was moved in: the old export stays whole and the next write restores it first (and
    removes the dead staging folder)."""
    from visionkit.export import export_run

    run = tmp_path / "run"
    shutil.copytree(exported, run)
    before = tree_digest(run / "export")
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "export" and Path(src).name.startswith(".export."):
            raise _SimulatedKill
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_SimulatedKill):
        export_run(run, ["tflite_fp32"], progress=False, latency_runs=1)
    monkeypatch.setattr(os, "replace", real_replace)
    # nothing runs after a SIGKILL: the previous export is whole, set aside ...
    assert tree_digest(run / ".export.old") == before
    # ... and the next write to the folder puts it back before anything else
    from visionkit.io import atomic_directory

    with pytest.raises(_SimulatedKill), atomic_directory(run / "export"):
        assert tree_digest(run / "export") == before
        raise _SimulatedKill
    assert tree_digest(run / "export") == before
    assert not any(p.name.startswith(".export.") for p in run.iterdir())


def _disk_full_on_second_checkpoint(monkeypatch) -> dict:
    """Make the second write of ``model.keras`` fail as a full disk does: a partial file,
    then ENOSPC. Returns the record of what happened."""
    record: dict = {"calls": 0, "first_sha": None}
    real_save = keras.Model.save

    def save(self, filepath, *args, **kwargs):
        path = Path(filepath)
        if not (path.name.startswith(".model.") and path.suffix == ".keras"):
            return real_save(self, filepath, *args, **kwargs)  # not the best checkpoint
        record["calls"] += 1
        if record["calls"] == 2:
            path.write_bytes(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_save(self, filepath, *args, **kwargs)
        record["first_sha"] = sha256(path)

    monkeypatch.setattr(keras.Model, "save", save)
    return record


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(
    tmp_path, layout_data, monkeypatch
):
    """The second best-checkpoint write fails with ENOSPC after writing part of the file:
    the run stops with an error naming the checkpoint, the disk error and ``resume=true``;
    ``model.keras`` is the first checkpoint, whole and loadable; no temporary file is
    left; once space is back, ``resume=true`` finishes the run."""
    from visionkit.cfg import resolve
    from visionkit.tasks.registry import get_task
    from visionkit.train.trainer import train

    runs = tmp_path / "runs"
    base = dict(
        data=str(layout_data),
        model="lenet5",
        weights=None,
        imgsz=32,
        batch=8,
        epochs=3,
        lr=0.01,
        augment=False,
        patience=0,
        verbose=0,
        out=str(runs),
        name="full",
    )
    record = _disk_full_on_second_checkpoint(monkeypatch)
    with pytest.raises(OSError) as caught:
        train(get_task("classify"), resolve(base))
    message = str(caught.value)
    run = runs / "full"
    assert record["calls"] == 2
    assert str(run / "model.keras") in message
    assert "No space left on device" in message
    assert "previous checkpoint is intact" in message and "resume=true" in message
    assert sha256(run / "model.keras") == record["first_sha"]
    load_model(run / "model.keras", compile=False)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".model.")]
    assert _epochs(run)[-1] >= 1  # the epoch whose checkpoint failed is in the history

    monkeypatch.undo()
    keras.backend.clear_session()
    train(get_task("classify"), resolve({**base, "resume": True}))
    assert _epochs(run) == [0, 1, 2]
    load_model(run / "model.keras", compile=False)
    TALLY.add("interruption", disk_full=1, checkpoints_intact=1, resumed=1)


def test_a_full_disk_at_the_command_line_is_a_message_not_a_traceback(
    tmp_path, layout_data, monkeypatch, capsys
):
    """``visionkit classify train`` with a disk that fills at the second checkpoint: a
    non-zero exit with the checkpoint error on stderr, no traceback."""
    record = _disk_full_on_second_checkpoint(monkeypatch)
    args = train_args(layout_data, tmp_path / "runs", "full", epochs=3, batch=8, augment="false")
    result = run_cli(capsys, "classify", "train", *args)
    assert record["calls"] == 2
    assert result.code != 0
    assert "visionkit: error: could not write the checkpoint" in result.err
    assert "Traceback" not in result.err
