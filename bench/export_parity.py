"""Export parity on real runs: each format's task metric beside the Keras model's, on the
test split the run never saw, and its batch-1 latency.

    python bench/export_parity.py --run bench/results/runs/cats_dogs_lite0_s0 \
        --data ../shared/data/cats_dogs/test_set [--formats saved_model,tflite_fp32,...]

Calls ``visionkit.export.export_run(RUN, formats, val_data=DATA)``, i.e. ``visionkit TASK
export model=RUN val=DATA``: every export is run back through the same predictor that
``visionkit TASK predict model=FILE`` uses, on the same uint8 images as the Keras model.
Nothing is chosen on DATA (the run's checkpoint was picked on its own validation split;
int8 calibration uses 100 of its training images). Prints the report table and writes
``bench/results/export_parity_<run>.json`` with the drops against Keras.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

FORMATS = "saved_model,tflite_fp32,tflite_fp16,tflite_dynamic,tflite_int8"
METRIC = {"classify": "accuracy", "detect": "map50", "segment": "miou"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a run folder (model.keras + config.yaml)")
    parser.add_argument("--data", required=True, help="held-out data to measure on")
    parser.add_argument("--formats", default=FORMATS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import yaml

    from visionkit.export import export_run
    from visionkit.export.report import format_table

    run = Path(args.run)
    task = yaml.safe_load((run / "config.yaml").read_text())["task"]
    started, cond = time.time(), C.conditions()
    C.reset_keras()
    out = export_run(run, args.formats, val_data=args.data, num_threads=args.threads)
    report = json.loads((out / "report.json").read_text())
    metric = METRIC[task]
    reference = report["keras"][metric]
    drops = {
        name: round(reference - entry[metric], 6)
        for name, entry in report.items()
        if name != "keras" and entry.get(metric) is not None
    }
    print(format_table(report))
    print(f"\n{metric} drop against Keras: " + ", ".join(f"{k} {v:+.4f}" for k, v in drops.items()))
    payload = {
        "conditions": C.finish_conditions(cond, started),
        "run": str(run),
        "data": args.data,
        "task": task,
        "metric": metric,
        "report": report,
        "drops": drops,
    }
    C.write_results(f"export_parity_{run.name}", payload)


if __name__ == "__main__":
    main()
