"""Run visionkit training runs in a fresh process, for the distribution tests.

    python tests/train/distributed_run.py SPEC.json

Logical CPU devices and the multi-worker runtime must be set up before TensorFlow
initialises, which a pytest process has long done: the tests start this script instead.
``SPEC.json``: ``{"cpus": 2, "tf_config": {...} | null, "task": "classify",
"runs": [config, ...], "result": "out.json"}``. Each config is resolved like a pipeline
file and trained with ``visionkit.train.trainer.train``; the result file gets, per run,
whether this process was the chief, the run folder, the resolved replicas and global
batch, and the chief's ``history.csv`` rows.
"""

from __future__ import annotations

import csv
import json
import os
import sys


def main(spec_path: str) -> int:
    with open(spec_path) as handle:
        spec = json.load(handle)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if spec.get("tf_config"):
        os.environ["TF_CONFIG"] = json.dumps(spec["tf_config"])
    import tensorflow as tf

    cpus = int(spec.get("cpus") or 1)
    if cpus > 1:
        physical = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            physical, [tf.config.LogicalDeviceConfiguration() for _ in range(cpus)]
        )

    import keras

    from visionkit.cfg import resolve
    from visionkit.tasks.registry import get_task
    from visionkit.train.trainer import train

    results = []
    for settings in spec["runs"]:
        keras.backend.clear_session()
        result = train(get_task(spec.get("task", "classify")), resolve(settings, where="spec"))
        history = []
        if result.chief:
            with open(result.run.history, newline="") as handle:
                history = list(csv.DictReader(handle))
        results.append(
            {
                "chief": result.chief,
                "run": str(result.run.dir),
                "replicas": result.config["replicas"],
                "global_batch": result.config["global_batch"],
                "history": history,
                "metrics": result.metrics,
            }
        )
    with open(spec["result"], "w") as handle:
        json.dump(results, handle, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
