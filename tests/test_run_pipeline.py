"""`visionkit run PIPELINE`: training, validation, test, then export, in one command."""

from __future__ import annotations

import json

from visionkit.cli import main


def test_run_trains_tests_and_exports(tmp_path, capsys):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "task: classify\ndata: builtin:shapes\ntest: builtin:shapes\nmodel: lenet5\n"
        "weights: null\nimgsz: 32\nepochs: 1\nbatch: 64\nformats: tflite_fp32\n"
    )
    assert main(["run", str(pipeline), f"out={tmp_path}", "name=r", "verbose=0"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "r"
    assert (run / "model.keras").exists() and (run / "test" / "metrics.json").exists()
    report = json.loads((run / "export" / "report.json").read_text())
    assert report["tflite_fp32"]["max_abs_diff"] <= 1e-4
    assert f"visionkit classify predict model={run / 'export' / 'model_fp32.tflite'}" in out
    assert (
        main(["run", str(pipeline), f"out={tmp_path}", "name=s", "verbose=0", "formats=none"]) == 0
    )
    assert not (tmp_path / "s" / "export").exists()
