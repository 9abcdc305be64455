"""Raccoon detection from scratch, side by side: keras-cv 0.9.0's YOLOV8Detector and visionkit.

    python bench/detect_kerascv.py --data ../shared/data [--method kerascv|visionkit|both]
        [--seeds 0 1 2] [--minutes 25] [--budget wall|train] [--imgsz 320]
        [--eval-every 10] [--batch 16]
        [--vk-model yolo_n] [--vk-epochs E] [--kcv-augment visionkit|kerascv] [--tag T]
        [key=value ...]
    python bench/detect_kerascv.py --throughput [--rounds 6] [--steps 12] [--seeds 0]

Both methods train from scratch on raccoon ``train_labels.csv`` for the same wall-clock
budget (``--minutes``, per run) at the same image size, and are scored on ``test_labels.csv``
with visionkit's COCO-style evaluator (pycocotools-exact), in the letterboxed frame of the
model input (a uniform scale and shift of the original image, so IoU and mAP are unchanged).

Data. Each seed carves its validation split with the trainer's own function
(``visionkit.data.prepare.prepare_data``: seeded, stratified 20 % of ``train_labels.csv``),
so both methods see the same 128 training / 32 validation images. keras-cv gets the batches
of visionkit's detection pipeline (``build_pipeline``: letterboxed float32 images in
[0, 255]; with the default ``--kcv-augment visionkit`` the same augmentation as visionkit,
Mosaic and MixUp included and switched off for the last ``--kcv-close-mosaic`` epochs'
worth of budget; ``--kcv-augment kerascv`` instead applies the keras.io YOLOv8 example's
augmenter: RandomFlip, RandomTranslation 0.2, RandomShear 0.2, JitteredResize 0.75-1.3, on
unaugmented letterboxed batches), rewritten in keras-cv's dict format
``{"images", "bounding_boxes": {"boxes", "classes"}}`` with padding rows -1 (boxes and
classes), at most 32 boxes per image (the example's ``to_dense(max_boxes=32)``).

keras-cv model: ``YOLOV8Backbone(stackwise_channels=[32, 64, 128, 256],
stackwise_depth=[1, 2, 2, 1], include_rescaling=True, activation="swish")``, the
``yolo_v8_xs_backbone`` preset written out (its 1,277,680 parameters are checked against
the preset's metadata; presets need the network), in ``YOLOV8Detector(num_classes=1,
bounding_box_format="xyxy", fpn_depth=1)``, compiled as in the keras.io YOLOv8 example:
``Adam(learning_rate=0.001, global_clipnorm=10.0)``, ``classification_loss=
"binary_crossentropy"``, ``box_loss="ciou"``. Predictions: its own decoder,
``NonMaxSuppression(bounding_box_format="xyxy", from_logits=False,
confidence_threshold=0.001, iou_threshold=0.7, max_detections=300)`` — the confidence and
IoU thresholds and detection cap of visionkit's validation (``iou``/``max_det`` defaults).
Training runs until the budget is spent (checked after every batch); the periodic
validation evaluations (``--eval-every`` epochs) are left out of its budget, as they exist
only for this record (see Budget). Tested: the final weights, and the weights of the
evaluation with the best validation mAP@0.5:0.95 (visionkit's monitor).

visionkit model: ``yolo_n`` (CSP-n backbone, from scratch, ``weights=None``) with
``pipelines/detect_yolo.yaml`` (``patience=0`` so that the whole budget is used; other
overrides as ``key=value``). visionkit has no time budget key: a 3-epoch probe measures the
first and the steady epoch time (with ``--budget wall``: training plus its validation,
which picks the checkpoint, divided by N with ``val_every=N``) and sets ``epochs`` so that
the cosine schedule and the closing of Mosaic end within ``--vk-fill`` of the budget; a guard stops a run that
reaches the budget anyway (``stopped_by_budget``). Tested: the run's checkpoint (best
validation mAP@0.5:0.95 of the moving-average weights, ``visionkit detect val model=RUN
data=test_labels.csv``) and the final moving-average weights.

Side by side at the same time (the recorded runs): one process per method, each pinned to
its own core, then ``--merge`` builds the table from both results files::

    taskset -c 0 python bench/detect_kerascv.py --method kerascv --tag _kcv
    taskset -c 1 python bench/detect_kerascv.py --method visionkit --tag _vk
    python bench/detect_kerascv.py --merge bench/results/detect_kerascv_kcv.json \
        bench/results/detect_kerascv_vk.json --tag _side_by_side

Both see the same machine at the same moments (a load change hits both alike), and the
throughput ratio is measured side by side; each run has one core for the budget.

Budget (``--budget``): ``wall`` (default) counts each ``fit`` call's wall time, less
keras-cv's record-keeping evaluations, so visionkit's per-epoch validation is inside its
budget; ``train`` counts only the time spent in training batches, for both (every
evaluation left out). Each run reports both times.

Throughput: training images / seconds spent in training batches (epoch start to its last
batch: data, forward, backward, update, and visionkit's EMA update; no validation), over
all epochs and over epochs 2+ (the first one traces the graph); plus images / budget
seconds. Swing: the largest drop of validation mAP@0.5 between consecutive evaluations,
every ``--eval-every`` epochs for both (visionkit also per epoch), over the whole run and its
second half. Ratios are visionkit / keras-cv, per seed.

``--throughput`` measures the training rate alone, free of the two pinned cores' differences:
one process (all cores), the seed's first ``--steps`` augmented batches of each method's
training pipeline cached in memory, each model compiled as in its budget run (visionkit:
the trainer's optimizer, loss and moving average of the weights), one untimed ``fit`` each
(tracing), then ``--rounds`` rounds in which each trains one pass over its cached batches,
the order alternating. A round's rate: images from the end of its first step to the end of
its last (data from memory, forward, backward, update, visionkit's EMA update). Reported:
per-method medians and the median, min and max of the per-round ratios, with each model's
parameters and multiply-accumulates per image (``forward_macs``). Writes
``bench/results/detect_kerascv[tag].json`` after each run and prints markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

RECIPE = "pipelines/detect_yolo.yaml"
XS_BACKBONE = dict(
    stackwise_channels=[32, 64, 128, 256],
    stackwise_depth=[1, 2, 2, 1],
    include_rescaling=True,
    activation="swish",
)
XS_PRESET_PARAMS = 1_277_680  # keras-cv 0.9.0 yolo_v8_backbone_presets.py, yolo_v8_xs_backbone
KCV_MAX_BOXES = 32
SCORE_THRESHOLD = 0.001


# -- timing ---------------------------------------------------------------------------------
def make_timer(budget_s: float, batch: int, n_train: int, mode: str = "wall"):
    """A Keras callback that times the training batches of each epoch and stops training
    once the budget is spent (checked after every batch). ``mode="wall"``: the budget counts
    the wall time of ``fit`` less ``excluded`` (keras-cv's record-keeping evaluations);
    ``mode="train"``: only the time spent in training batches."""
    import keras

    class Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.budget_s, self.batch, self.n_train, self.mode = budget_s, batch, n_train, mode
            self.excluded = 0.0  # seconds inside fit that the wall budget leaves out
            self.epochs: list[dict[str, float]] = []
            self.fit_start = self.fit_end = self._begin = self._last = 0.0
            self._steps, self._in_epoch = 0, False
            self.stopped_by_budget = False
            self.jit_compile = None

        def used(self) -> float:
            now = time.perf_counter()
            if self.mode == "wall":
                return now - self.fit_start - self.excluded
            current = (now - self._begin) if self._in_epoch else 0.0
            return sum(e["train_s"] for e in self.epochs) + current

        def on_train_begin(self, logs=None) -> None:
            self.fit_start = time.perf_counter()
            self.jit_compile = bool(getattr(self.model, "jit_compile", False))

        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            self._begin = self._last = time.perf_counter()
            self._steps, self._in_epoch = 0, True

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            self._last = time.perf_counter()
            self._steps += 1
            if self.used() >= self.budget_s:
                self.model.stop_training = True
                self.stopped_by_budget = True

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            now = time.perf_counter()
            self._in_epoch = False
            self.epochs.append(
                {
                    "epoch": epoch + 1,
                    "train_s": self._last - self._begin,
                    # validation (visionkit: val loss, mAP, checkpoint) up to this callback
                    "after_batches_s": now - self._last,
                    "images": min(self._steps * self.batch, self.n_train),
                    "end_s": now - self.fit_start,
                }
            )

        def on_train_end(self, logs=None) -> None:
            self.fit_end = time.perf_counter()

        def summary(self) -> dict[str, Any]:
            images = sum(e["images"] for e in self.epochs)
            train_s = sum(e["train_s"] for e in self.epochs)
            rest = self.epochs[1:]
            images_2, train_2 = sum(e["images"] for e in rest), sum(e["train_s"] for e in rest)
            fit_s = self.fit_end - self.fit_start
            budget_s = fit_s - self.excluded if self.mode == "wall" else train_s
            return {
                "budget_mode": self.mode,
                "epochs_run": len(self.epochs),
                "images_seen": images,
                "fit_wall_s": round(fit_s, 1),
                "budget_counted_s": round(budget_s, 1),
                "excluded_eval_s": round(self.excluded, 1),
                "train_batches_s": round(train_s, 1),
                "outside_batches_s": round(fit_s - train_s - self.excluded, 1),
                "first_epoch_train_s": round(self.epochs[0]["train_s"], 2) if self.epochs else None,
                "ips_train": images / train_s if train_s else None,
                "ips_train_steady": images_2 / train_2 if train_2 else None,
                "ips_budget": images / budget_s if budget_s else None,
                "stopped_by_budget": self.stopped_by_budget,
                "jit_compile": self.jit_compile,
                "epoch_times": [
                    {k: (round(v, 3) if isinstance(v, float) else v) for k, v in e.items()}
                    for e in self.epochs
                ],
            }

    return Timer()


# -- data and evaluation --------------------------------------------------------------------
def base_config(train_csv: Path, seed: int, args, overrides: dict[str, Any]) -> dict[str, Any]:
    """The resolved visionkit config of a seed's run (also gives keras-cv its split)."""
    from visionkit.cfg import load_pipeline, resolve

    settings = {
        "out": str(C.RUNS),
        "exist_ok": True,
        "verbose": 0,
        "task": "detect",
        "data": str(train_csv),
        "model": args.vk_model,
        "weights": None,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "seed": seed,
        "patience": 0,
        **overrides,
    }
    return resolve(load_pipeline(str(C.REPO / RECIPE)), settings, where="bench")


def load_test(test_csv: Path):
    """The test split as ``visionkit detect val`` reads it (doctor-checked)."""
    from visionkit.data.loader import load_dataset
    from visionkit.data.prepare import checked

    dataset = load_dataset(str(test_csv), None, "detect", None)
    dataset, _, pil, skipped = checked(dataset, strict=False, progress=False)
    if skipped:
        print(f"test: skipped {skipped} faulty files")
    return dataset, pil


def eval_pipeline(dataset, imgsz: int, batch: int, needs_pil):
    from visionkit.data.pipeline import build_pipeline

    return build_pipeline(
        dataset,
        task="detect",
        imgsz=imgsz,
        batch=batch,
        training=False,
        augment=False,
        needs_pil=needs_pil,
    )


def kcv_detections(model, pipeline) -> tuple[list[dict], list[dict]]:
    """Ground truth and keras-cv's NMS'd predictions per image, in the pipeline's frame.
    (``model.predict``, as keras-cv's ``predict_step`` decodes; ``predict_on_batch`` hands
    it a tuple and fails.)"""
    out = model.predict(pipeline.map(lambda images, targets: images), verbose=0)
    truths, predictions = [], []
    for _, targets in pipeline:
        classes, boxes = targets["classes"].numpy(), targets["boxes"].numpy()
        for i in range(len(classes)):
            keep = classes[i] >= 0
            truths.append({"boxes": boxes[i][keep], "classes": classes[i][keep]})
    for i in range(len(truths)):
        n = int(out["num_detections"][i])
        predictions.append(
            {
                "boxes": out["boxes"][i, :n],
                "scores": out["confidence"][i, :n],
                "classes": out["classes"][i, :n],
            }
        )
    return truths, predictions


def vk_detections(model, pipeline, config: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    from visionkit.tasks.detect import DetectTask

    settings = {"iou": config["iou"], "max_det": config["max_det"], "num_classes": 1}
    return DetectTask().detections(
        model, pipeline, settings, progress=False, score_threshold=SCORE_THRESHOLD
    )


def score(truths, predictions, class_names) -> dict[str, float]:
    from visionkit.evaluate.detection import evaluate_detections

    metrics = evaluate_detections(truths, predictions, class_names).metrics
    return {"map50": float(metrics["map50"]), "map50_95": float(metrics["map50_95"])}


def swing(curve: list[dict[str, Any]], key: str = "map50") -> dict[str, Any]:
    """Largest drop between consecutive evaluations (all, and the second half) and the
    largest fall below the best so far."""
    values = [float(p[key]) for p in curve]

    def max_drop(v: list[float]) -> float:
        return max([0.0, *(a - b for a, b in itertools.pairwise(v))])

    drawdown, best = 0.0, -math.inf
    for v in values:
        best = max(best, v)
        drawdown = max(drawdown, best - v)
    return {
        "evaluations": len(values),
        "max_consecutive_drop": max_drop(values),
        "max_consecutive_drop_second_half": max_drop(values[len(values) // 2 :]),
        "max_drawdown": drawdown if values else 0.0,
    }


def count_params(model) -> dict[str, int]:
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {"total": int(model.count_params()), "trainable": trainable}


# -- keras-cv -------------------------------------------------------------------------------
def build_kerascv(args):
    import keras
    import keras_cv

    backbone = keras_cv.models.YOLOV8Backbone(**XS_BACKBONE)
    if backbone.count_params() != XS_PRESET_PARAMS:
        raise SystemExit(
            f"keras-cv xs backbone has {backbone.count_params()} parameters, the preset "
            f"{XS_PRESET_PARAMS}: the explicit configuration is not the preset's"
        )
    decoder = keras_cv.layers.NonMaxSuppression(
        bounding_box_format="xyxy",
        from_logits=False,
        confidence_threshold=SCORE_THRESHOLD,
        iou_threshold=args.nms_iou,
        max_detections=args.max_det,
    )
    model = keras_cv.models.YOLOV8Detector(
        num_classes=1,
        bounding_box_format="xyxy",
        backbone=backbone,
        fpn_depth=args.kcv_fpn_depth,
        prediction_decoder=decoder,
    )
    if args.kcv_optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=args.kcv_lr, global_clipnorm=10.0)
    else:
        optimizer = keras.optimizers.SGD(
            learning_rate=args.kcv_lr, momentum=0.9, global_clipnorm=10.0
        )
    model.compile(optimizer=optimizer, classification_loss="binary_crossentropy", box_loss="ciou")
    return model, backbone


def kerascv_train_data(data, args, seed: int):
    """visionkit's training batches in keras-cv's dict format (see the module docstring)."""
    import tensorflow as tf

    from visionkit.data.pipeline import build_pipeline

    own = args.kcv_augment == "visionkit"
    pipeline = build_pipeline(
        data.train,
        task="detect",
        imgsz=args.imgsz,
        batch=args.batch,
        training=True,
        augment=own,
        seed=seed,
        cache=True,
        max_boxes=KCV_MAX_BOXES,
        needs_pil=data.needs_pil,
    )
    controls = pipeline.controls

    def to_kcv(images, targets):
        pad = targets["classes"] < 0
        boxes = tf.where(pad[..., None], -1.0, targets["boxes"])
        classes = tf.cast(targets["classes"], tf.float32)
        return {"images": images, "bounding_boxes": {"boxes": boxes, "classes": classes}}

    ds = pipeline.map(to_kcv, num_parallel_calls=tf.data.AUTOTUNE)
    if not own:
        import keras
        import keras_cv

        size = (args.imgsz, args.imgsz)
        augmenter = keras.Sequential(
            [
                keras_cv.layers.RandomFlip(mode="horizontal", bounding_box_format="xyxy"),
                keras_cv.layers.RandomTranslation(
                    height_factor=0.2, width_factor=0.2, bounding_box_format="xyxy"
                ),
                keras_cv.layers.RandomShear(x_factor=0.2, y_factor=0.2, bounding_box_format="xyxy"),
                keras_cv.layers.JitteredResize(
                    target_size=size, scale_factor=(0.75, 1.3), bounding_box_format="xyxy"
                ),
            ]
        )

        def dense(d):
            boxes = keras_cv.bounding_box.to_dense(d["bounding_boxes"], max_boxes=KCV_MAX_BOXES)
            return {"images": d["images"], "bounding_boxes": boxes}

        ds = ds.map(augmenter, num_parallel_calls=tf.data.AUTOTUNE).map(
            dense, num_parallel_calls=tf.data.AUTOTUNE
        )
    return ds.prefetch(tf.data.AUTOTUNE), controls


def run_kerascv(seed: int, train_csv: Path, test, args, overrides) -> dict[str, Any]:
    import keras

    from visionkit.data.prepare import prepare_data

    C.reset_keras()
    config = base_config(train_csv, seed, args, overrides)
    keras.utils.set_random_seed(seed)
    data = prepare_data(config, task="detect", progress=False)
    names = list(data.class_names)
    train_ds, controls = kerascv_train_data(data, args, seed)
    val_pipe = eval_pipeline(data.val, args.imgsz, args.batch, data.needs_pil)
    test_pipe = eval_pipeline(test[0], args.imgsz, args.batch, test[1])
    model, backbone = build_kerascv(args)
    timer = make_timer(args.minutes * 60.0, args.batch, len(data.train), args.budget)
    curve: list[dict[str, Any]] = []
    best: dict[str, Any] = {"map50_95": -1.0, "weights": None, "epoch": None}
    close_at: dict[str, Any] = {"epoch": None}

    class Periodic(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            done = timer.epochs[1:]
            if close_at["epoch"] is not None or not done or not args.kcv_close_mosaic:
                return
            per_epoch = sum(e["train_s"] for e in done) / len(done)
            if args.minutes * 60.0 - timer.used() <= args.kcv_close_mosaic * per_epoch:
                controls.set_mosaic_prob(0.0)
                controls.set_mixup_prob(0.0)
                close_at["epoch"] = epoch + 1

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            if (epoch + 1) % args.eval_every:
                return
            t0 = time.perf_counter()
            point = {"epoch": epoch + 1, **score(*kcv_detections(self.model, val_pipe), names)}
            loss = (logs or {}).get("loss")
            point["loss"] = None if loss is None else float(loss)
            curve.append(point)
            if point["map50_95"] > best["map50_95"]:
                best.update(
                    map50_95=point["map50_95"], weights=self.model.get_weights(), epoch=epoch + 1
                )
            timer.excluded += time.perf_counter() - t0
            print(
                f"  kerascv s{seed} epoch {epoch + 1}: val mAP@0.5 {point['map50']:.3f} "
                f"mAP@0.5:0.95 {point['map50_95']:.3f} loss {loss if loss is None else f'{loss:.2f}'} "
                f"({timer.used() / 60:.1f} of {args.minutes:g} min)",
                flush=True,
            )

    # shuffle=False: the pipeline shuffles itself, seeded per epoch (as in visionkit's trainer)
    model.fit(train_ds, epochs=10**6, callbacks=[timer, Periodic()], shuffle=False, verbose=0)
    timing = timer.summary()
    if not curve or curve[-1]["epoch"] != timing["epochs_run"]:
        point = {"epoch": timing["epochs_run"], **score(*kcv_detections(model, val_pipe), names)}
        curve.append(point)
        if point["map50_95"] > best["map50_95"]:
            best.update(
                map50_95=point["map50_95"], weights=model.get_weights(), epoch=point["epoch"]
            )
    test_final = score(*kcv_detections(model, test_pipe), names)
    model.set_weights(best["weights"])
    test_best = score(*kcv_detections(model, test_pipe), names)
    return {
        "method": "kerascv",
        "seed": seed,
        "model": "keras-cv YOLOV8Detector xs",
        "params": count_params(model),
        "backbone_params": int(backbone.count_params()),
        "train_images": len(data.train),
        "val_images": len(data.val),
        **timing,
        "mosaic_closed_at_epoch": close_at["epoch"],
        "test_best": {**test_best, "epoch": best["epoch"]},
        "test_final": test_final,
        "val_curve": curve,
        "swing": swing(curve),
    }


# -- visionkit ------------------------------------------------------------------------------
def budget_task(timer):
    """visionkit's detection task with the timer added to its callbacks."""
    from visionkit.tasks.detect import DetectTask

    class BudgetDetectTask(DetectTask):
        def callbacks(self, config, controls, stage) -> list:
            return [*super().callbacks(config, controls, stage), timer]

    return BudgetDetectTask()


def vk_train(config: dict[str, Any], budget_s: float, mode: str):
    from visionkit.data.prepare import prepare_data
    from visionkit.train.trainer import train

    C.reset_keras()
    n_train = len(prepare_data(config, task="detect", progress=False).train)
    timer = make_timer(budget_s, int(config["batch"]), n_train, mode)
    t0 = time.perf_counter()
    result = train(budget_task(timer), config)
    return result, timer, time.perf_counter() - t0, n_train


def vk_probe(train_csv: Path, args, overrides) -> dict[str, Any]:
    """Epoch times of a 3-epoch run (wall, or training batches with ``--budget train``);
    the ``epochs`` that fill ``--vk-fill`` of the budget. The probe validates every epoch;
    with ``val_every=N`` a steady epoch is charged a validation's time divided by N."""
    config = base_config(train_csv, args.seeds[0], args, overrides)
    every = int(config.get("val_every") or 1)
    config.update(
        epochs=3, val_every=1, name=f"kcvcmp_probe_{args.vk_model}_{args.imgsz}{args.tag}"
    )
    _, timer, _, _ = vk_train(config, budget_s=10**9, mode=args.budget)
    if args.budget == "wall":
        ends = [e["end_s"] for e in timer.epochs]
        first, steady = ends[0], (ends[-1] - ends[0]) / (len(ends) - 1)
        validation = sum(e["after_batches_s"] for e in timer.epochs[1:]) / (len(ends) - 1)
        steady -= validation * (1.0 - 1.0 / every)
    else:
        times = [e["train_s"] for e in timer.epochs]
        first, steady = times[0], sum(times[1:]) / (len(times) - 1)
    budget = args.minutes * 60.0 * args.vk_fill
    epochs = max(1, 1 + int((budget - first) // steady))
    print(f"probe: first epoch {first:.1f} s, then {steady:.1f} s/epoch → epochs={epochs}")
    return {
        "first_epoch_s": round(first, 2),
        "steady_epoch_s": round(steady, 2),
        "epochs": epochs,
        "timing": timer.summary(),
    }


def run_visionkit(seed: int, train_csv: Path, test, epochs: int, args, overrides) -> dict[str, Any]:
    import pandas as pd

    from visionkit.models.saving import load_model

    config = base_config(train_csv, seed, args, overrides)
    config.update(epochs=epochs, name=f"kcvcmp_{args.vk_model}_{args.imgsz}_s{seed}{args.tag}")
    result, timer, seconds, n_train = vk_train(config, args.minutes * 60.0, args.budget)
    run_dir = result.run.dir
    names = list(result.config["class_names"])
    test_best = C.test_run(run_dir, test[2], task="detect")
    stages = json.loads((run_dir / "state" / "progress.json").read_text())["completed"]
    final = load_model(run_dir / "state" / f"after_{stages[-1]}.keras", compile=False)
    test_pipe = eval_pipeline(test[0], args.imgsz, args.batch, test[1])
    test_final = score(*vk_detections(final, test_pipe, result.config), names)
    frame = pd.read_csv(run_dir / "history.csv")
    per_epoch = [
        {"epoch": int(r.epoch) + 1, "map50": float(r.val_map50), "map50_95": float(r.val_map50_95)}
        for r in frame.itertuples()
    ]
    every = [p for p in per_epoch if p["epoch"] % args.eval_every == 0]
    if per_epoch and (not every or every[-1]["epoch"] != per_epoch[-1]["epoch"]):
        every.append(per_epoch[-1])
    history = C.history_summary(run_dir)
    params = count_params(final)
    return {
        "method": "visionkit",
        "seed": seed,
        "model": args.vk_model,
        "run": str(run_dir),
        "params": params,
        "train_images": n_train,
        "epochs_planned": epochs,
        **timer.summary(),
        "train_call_s": round(seconds, 1),
        "test_best": {
            "map50": float(test_best["map50"]),
            "map50_95": float(test_best["map50_95"]),
            "epoch": history.get("best_epoch", -1) + 1,
        },
        "test_final": test_final,
        "val_curve": every,
        "val_curve_per_epoch": per_epoch,
        "swing": swing(every),
        "swing_per_epoch": swing(per_epoch),
    }


# -- training throughput, paired rounds -----------------------------------------------------
def forward_macs(model, imgsz: int) -> int:
    """Multiply-accumulates of one forward pass of a (1, imgsz, imgsz, 3) image: half the
    float operations TensorFlow's graph profiler counts in the frozen graph (convolutions,
    matmuls and the element-wise ops; the same counter for both models, whose inputs have
    unknown spatial size, so that ``visionkit.analysis.layer_table`` cannot count keras-cv's)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((1, imgsz, imgsz, 3), tf.float32)
    forward = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = convert_variables_to_constants_v2(forward).graph
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops) // 2


def throughput(train_csv: Path, args, overrides) -> dict[str, Any]:
    """Training images/s of both methods in one process on the same augmented batches,
    in alternating rounds (``--throughput``; see the module docstring)."""
    import statistics

    import keras

    from visionkit.data.pipeline import build_pipeline
    from visionkit.data.prepare import prepare_data
    from visionkit.tasks.detect import DetectTask
    from visionkit.train.callbacks import ModelEMA
    from visionkit.train.recipes import make_optimizer, plan_stages

    seed, steps = args.seeds[0], args.steps
    config = base_config(train_csv, seed, args, overrides)
    C.reset_keras()
    keras.utils.set_random_seed(seed)
    data = prepare_data(config, task="detect", progress=False)
    names = list(data.class_names)

    kcv_ds = kerascv_train_data(data, args, seed)[0].take(steps).cache()
    kcv_model, _ = build_kerascv(args)

    task = DetectTask()
    config = task.fill_defaults(config)
    vk_model, _ = task.build_model(config, names)
    (stage,) = plan_stages(config, pretrained=False)
    task.set_trainable(vk_model, stage, config)
    vk_model.compile(
        optimizer=make_optimizer(config, stage, steps),
        **task.compile_args(config, len(names)),
    )
    vk_pipe = build_pipeline(
        data.train,
        task="detect",
        imgsz=(args.imgsz, args.imgsz),
        batch=args.batch,
        training=True,
        augment=config["augment"],
        seed=seed,
        cache=True,
        needs_pil=data.needs_pil,
    )
    vk_ds = task.adapt_dataset(vk_pipe, vk_model).take(steps).cache()
    ema = ModelEMA() if config.get("ema") else None

    class StepClock(keras.callbacks.Callback):
        """The time at the end of every training batch of a ``fit`` call."""

        def on_train_begin(self, logs=None) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            self.ends.append(time.perf_counter())

    def rate(method: str) -> float:
        """Images/s from the end of the first step to the end of the last (no tracing, no
        ``fit`` set-up; visionkit's EMA update is inside every step)."""
        clock = StepClock()
        if method == "kerascv":
            kcv_model.fit(kcv_ds, epochs=1, callbacks=[clock], shuffle=False, verbose=0)
        else:
            extra = [ema] if ema is not None else []
            vk_model.fit(vk_ds, epochs=1, callbacks=[*extra, clock], shuffle=False, verbose=0)
        ends = clock.ends
        return args.batch * (len(ends) - 1) / (ends[-1] - ends[0])

    methods = ("kerascv", "visionkit")
    for method in methods:  # untimed: traces the step and fills the batch cache
        rate(method)
    rounds: list[dict[str, float]] = []
    for r in range(args.rounds):
        order = methods if r % 2 == 0 else methods[::-1]
        rounds.append({m: rate(m) for m in order})
        print(
            f"round {r + 1}: keras-cv {rounds[-1]['kerascv']:.2f} img/s, visionkit "
            f"{rounds[-1]['visionkit']:.2f} img/s",
            flush=True,
        )

    per_round = [r["visionkit"] / r["kerascv"] for r in rounds]
    return {
        "seed": seed,
        "steps_per_round": steps,
        "batch": args.batch,
        "imgsz": args.imgsz,
        "ema": ema is not None,
        "rounds": rounds,
        "median_ips": {m: statistics.median(r[m] for r in rounds) for m in methods},
        "fastest_ips": {m: max(r[m] for r in rounds) for m in methods},
        "ratio_median_of_rounds": statistics.median(per_round),
        "ratio_min_of_rounds": min(per_round),
        "ratio_max_of_rounds": max(per_round),
        "params": {"kerascv": count_params(kcv_model), "visionkit": count_params(vk_model)},
        "macs_per_image": {
            "kerascv": forward_macs(kcv_model, args.imgsz),
            "visionkit": forward_macs(vk_model, args.imgsz),
        },
    }


def throughput_table(result: dict[str, Any]) -> str:
    rows = [
        [
            m,
            f"{result['params'][m]['total']:,}",
            f"{result['macs_per_image'][m] / 1e9:.2f}",
            f"{result['median_ips'][m]:.2f}",
            f"{result['fastest_ips'][m]:.2f}",
        ]
        for m in ("kerascv", "visionkit")
    ]
    text = C.md_table(["method", "params", "GMACs/image", "img/s median", "img/s fastest"], rows)
    return text + (
        f"\n\nvisionkit / keras-cv, median of {len(result['rounds'])} paired rounds: "
        f"{result['ratio_median_of_rounds']:.2f}x (rounds {result['ratio_min_of_rounds']:.2f}"
        f"-{result['ratio_max_of_rounds']:.2f}x)"
    )


# -- report ---------------------------------------------------------------------------------
def ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {(r["method"], r["seed"]): r for r in runs}
    out = []
    for seed in sorted({r["seed"] for r in runs}):
        vk, kcv = by.get(("visionkit", seed)), by.get(("kerascv", seed))
        if not (vk and kcv):
            continue

        def ratio(a, b):
            return a / b if a is not None and b else None  # None: undefined

        out.append(
            {
                "seed": seed,
                "map50_shipped": ratio(vk["test_best"]["map50"], kcv["test_final"]["map50"]),
                "map50_95_shipped": ratio(
                    vk["test_best"]["map50_95"], kcv["test_final"]["map50_95"]
                ),
                "map50_best_vs_best": ratio(vk["test_best"]["map50"], kcv["test_best"]["map50"]),
                "map50_95_best_vs_best": ratio(
                    vk["test_best"]["map50_95"], kcv["test_best"]["map50_95"]
                ),
                "map50_final_vs_final": ratio(
                    vk["test_final"]["map50"], kcv["test_final"]["map50"]
                ),
                "map50_95_final_vs_final": ratio(
                    vk["test_final"]["map50_95"], kcv["test_final"]["map50_95"]
                ),
                "ips_train": ratio(vk["ips_train"], kcv["ips_train"]),
                "ips_train_steady": ratio(vk["ips_train_steady"], kcv["ips_train_steady"]),
                "params": ratio(vk["params"]["total"], kcv["params"]["total"]),
            }
        )
    return out


def tables(runs: list[dict[str, Any]], ratio_rows: list[dict[str, Any]]) -> str:
    def f(x, digits=3):
        return "—" if x is None else f"{x:.{digits}f}"

    rows = [
        [
            r["method"],
            r["model"],
            f"{r['params']['total']:,}",
            r["seed"],
            r["epochs_run"],
            f"{r['budget_counted_s'] / 60:.1f}",
            f"{f(r['test_best']['map50'])} / {f(r['test_final']['map50'])}",
            f"{f(r['test_best']['map50_95'])} / {f(r['test_final']['map50_95'])}",
            f"{f(r['swing']['max_consecutive_drop'], 2)} ({r['swing']['evaluations']})",
            f"{f(r['ips_train'], 1)} / {f(r['ips_train_steady'], 1)}",
        ]
        for r in runs
    ]
    text = C.md_table(
        [
            "method",
            "model",
            "params",
            "seed",
            "epochs",
            "budget min",
            "test mAP@0.5 best / final",
            "test mAP@0.5:0.95 best / final",
            "val mAP@0.5 max drop (evals)",
            "train img/s all / epochs 2+",
        ],
        rows,
    )
    if ratio_rows:
        text += "\n\nvisionkit / keras-cv (shipped = visionkit checkpoint vs keras-cv final):\n\n"
        text += C.md_table(
            [
                "seed",
                "mAP@0.5 shipped",
                "mAP@0.5:0.95 shipped",
                "mAP@0.5 best/best",
                "mAP@0.5:0.95 best/best",
                "img/s epochs 2+",
                "params",
            ],
            [
                [
                    r["seed"],
                    f(r["map50_shipped"], 2),
                    f(r["map50_95_shipped"], 2),
                    f(r["map50_best_vs_best"], 2),
                    f(r["map50_95_best_vs_best"], 2),
                    f(r["ips_train_steady"], 2),
                    f(r["params"], 2),
                ]
                for r in ratio_rows
            ],
        )
    return text


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds, per method."""
    out: dict[str, Any] = {}
    for method in sorted({r["method"] for r in runs}):
        mine = [r for r in runs if r["method"] == method]
        values = {
            "test_best_map50": [r["test_best"]["map50"] for r in mine],
            "test_best_map50_95": [r["test_best"]["map50_95"] for r in mine],
            "test_final_map50": [r["test_final"]["map50"] for r in mine],
            "test_final_map50_95": [r["test_final"]["map50_95"] for r in mine],
            "ips_train": [r["ips_train"] for r in mine],
            "ips_train_steady": [r["ips_train_steady"] for r in mine],
            "val_map50_max_drop": [r["swing"]["max_consecutive_drop"] for r in mine],
        }
        out[method] = {
            k: dict(zip(("mean", "std"), C.mean_std(v), strict=True))
            for k, v in values.items()
            if v and None not in v
        }
        out[method]["seeds"] = [r["seed"] for r in mine]
    return out


def visionkit_param_counts(imgsz: int) -> dict[str, dict[str, int]]:
    """yolo_n and yolo_s at this size with one class (to compare with keras-cv xs)."""
    from visionkit.models import create_model

    counts = {}
    for name in ("yolo_n", "yolo_s"):
        C.reset_keras()
        counts[name] = count_params(
            create_model(name, num_classes=1, input_shape=(imgsz, imgsz, 3))
        )
    return counts


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("keras-cv", "keras-core", "kagglehub", "keras", "tensorflow", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def merge(paths: list[str], tag: str) -> None:
    """One results file and table from the runs of several (``--merge``)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    runs = [run for part in parts for run in part["runs"]]
    payload = {
        "merged_from": paths,
        "conditions": [part["conditions"] for part in parts],
        "settings": [part["settings"] for part in parts],
        "runs": runs,
        "ratios": ratios(runs),
        "summary": summary(runs),
    }
    C.write_results(f"detect_kerascv{tag}", payload)
    print(tables(runs, payload["ratios"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--method", choices=["kerascv", "visionkit", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=25.0, help="training budget per run")
    parser.add_argument(
        "--budget",
        choices=["wall", "train"],
        default="wall",
        help="wall: fit wall time (keras-cv's record-keeping evals left out); train: time in "
        "training batches only, for both",
    )
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--eval-every", type=int, default=10, help="epochs between val evals")
    parser.add_argument("--batch", type=int, default=16, help="batch size of both methods")
    parser.add_argument("--vk-model", default="yolo_n")
    parser.add_argument("--vk-epochs", type=int, default=None, help="skip the probe")
    parser.add_argument(
        "--vk-fill", type=float, default=0.98, help="fraction of the budget the probe plans"
    )
    parser.add_argument("--kcv-augment", choices=["visionkit", "kerascv"], default="visionkit")
    parser.add_argument("--kcv-close-mosaic", type=int, default=5, help="epochs (0: never)")
    parser.add_argument("--kcv-optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--kcv-lr", type=float, default=0.001)
    parser.add_argument("--kcv-fpn-depth", type=int, default=1)
    parser.add_argument("--nms-iou", type=float, default=0.7)
    parser.add_argument("--max-det", type=int, default=300)
    parser.add_argument("--tag", default="", help="suffix of the results file and run names")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="combine the runs of earlier results files (e.g. one per method, each run pinned "
        "to its own core at the same time) into one table and results file, then exit",
    )
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="measure only training images/s of both, in alternating rounds in one process "
        "on the same cached augmented batches (seed: the first of --seeds), then exit",
    )
    parser.add_argument("--rounds", type=int, default=6, help="paired rounds (--throughput)")
    parser.add_argument("--steps", type=int, default=12, help="steps per round (--throughput)")
    parser.add_argument("overrides", nargs="*", help="key=value for the visionkit recipe")
    args = parser.parse_args()
    from visionkit.config import parse_overrides

    if args.merge:
        merge(args.merge, args.tag)
        return
    if args.throughput:
        started, cond = time.time(), C.conditions()
        root = C.data_root(args.data) / "raccoon"
        result = throughput(root / "train_labels.csv", args, parse_overrides(args.overrides))
        payload = {"settings": vars(args), "throughput": result}
        payload["conditions"] = C.finish_conditions(cond, started)
        C.write_results(f"detect_kerascv_throughput{args.tag}", payload)
        print(throughput_table(result))
        return

    overrides = parse_overrides(args.overrides)
    root = C.data_root(args.data) / "raccoon"
    train_csv, test_csv = root / "train_labels.csv", root / "test_labels.csv"
    methods = ["kerascv", "visionkit"] if args.method == "both" else [args.method]
    started, cond = time.time(), C.conditions()
    test_ds, test_pil = load_test(test_csv)
    test = (test_ds, test_pil, test_csv)
    payload: dict[str, Any] = {
        "conditions": cond,
        "versions": versions(),
        "settings": {
            **{k: v for k, v in vars(args).items() if k != "overrides"},
            "recipe": RECIPE,
            "overrides": overrides,
            "kerascv_backbone": XS_BACKBONE,
            "kerascv_detector": {
                "num_classes": 1,
                "bounding_box_format": "xyxy",
                "fpn_depth": args.kcv_fpn_depth,
                "compile": {
                    "optimizer": f"{args.kcv_optimizer}(learning_rate={args.kcv_lr}, global_clipnorm=10.0)",
                    "classification_loss": "binary_crossentropy",
                    "box_loss": "ciou",
                },
                "prediction_decoder": {
                    "confidence_threshold": SCORE_THRESHOLD,
                    "iou_threshold": args.nms_iou,
                    "max_detections": args.max_det,
                },
                "max_boxes": KCV_MAX_BOXES,
            },
        },
        "visionkit_param_counts": visionkit_param_counts(args.imgsz),
        "runs": [],
    }
    epochs = args.vk_epochs
    if "visionkit" in methods and epochs is None:
        payload["probe"] = vk_probe(train_csv, args, overrides)
        epochs = payload["probe"]["epochs"]
    runs: list[dict[str, Any]] = payload["runs"]
    for seed in args.seeds:
        for method in methods:
            print(f"\n== {method} seed {seed}: {args.minutes:g} min budget", flush=True)
            if method == "kerascv":
                runs.append(run_kerascv(seed, train_csv, test, args, overrides))
            else:
                runs.append(run_visionkit(seed, train_csv, test, epochs, args, overrides))
            payload["ratios"] = ratios(runs)
            payload["summary"] = summary(runs)
            payload["conditions"] = C.finish_conditions(cond, started)
            C.write_results(f"detect_kerascv{args.tag}", payload)
            print(tables(runs, payload["ratios"]), flush=True)


if __name__ == "__main__":
    main()
