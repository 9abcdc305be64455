"""Detection export: NMS inside the SavedModel, ``TFLite_Detection_PostProcess`` inside
the TFLite files, and detection parity (COCO mAP and agreement with the Keras model).

SavedModel ``serving_default``: uint8 (B, h, w, 3) images of any size (one size per
batch) are letterboxed inside exactly as the evaluation pipeline does (bilinear resize of
the long side to the input size, centred, padded with 114; ``geometric.letterbox_params``
gives the geometry), the head is decoded and class-aware NMS applied
(``models.yolo.nms.postprocess``; ``conf``, ``iou``, ``max_det`` of the run's config), and
the boxes are mapped back to the input image's pixels (letterbox undone, clipped):
``boxes`` (B, N, 4) xyxy, ``scores`` (B, N), ``classes`` (B, N) int32, ``num_detections``
(B,) int32; rows past ``num_detections`` are zeros.

TFLite: uint8 (1, S, S, 3) letterboxed images → the decoded boxes and class scores go
into TFLite's builtin custom op ``TFLite_Detection_PostProcess`` (regular per-class NMS,
``conf``/``iou``/``max_det``), declared with ``tf.function(experimental_implements=...)``
and converted through a SavedModel, the route that keeps it (DESIGN.md). Its outputs, the
op's own convention: ``boxes`` (1, N, 4) normalised ``[ymin, xmin, ymax, xmax]`` in the
letterboxed frame, ``classes`` (1, N) float class ids, ``scores`` (1, N),
``num_detections`` (1,). The trick that feeds it decoded boxes: anchors (0, 0, 1, 1) with
unit scales make the op's centre-size decoding the identity on
``[y_centre, x_centre, log h, log w]``. ``detection_nms=False`` exports the raw head.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from visionkit.export.signatures import model_size, to_model_input
from visionkit.models.yolo.nms import EVAL_SCORE_THRESHOLD

PAD_VALUE = 114.0


# Score threshold built into exported NMS unless ``export_conf`` says otherwise: the one
# validation uses for mAP, so an exported file keeps every candidate the Keras model's
# evaluation counts; ``visionkit detect predict conf=...`` filters on top of it.
EXPORT_SCORE_THRESHOLD = EVAL_SCORE_THRESHOLD


def nms_settings(config: dict[str, Any]) -> tuple[float, float, int]:
    """(score threshold, iou, max_det) built into exported files: ``export_conf`` (default
    :data:`EXPORT_SCORE_THRESHOLD`), ``iou`` and ``max_det`` of the run config."""
    conf = config.get("export_conf")
    return (
        float(EXPORT_SCORE_THRESHOLD if conf is None else conf),
        float(config.get("iou", 0.7)),
        int(config.get("max_det", 300)),
    )


def is_yolov1(model) -> bool:
    return len(model.output_shape) == 4


def letterbox_batch(images: tf.Tensor, size: int):
    """uint8/float (B, h, w, 3) → (float32 (B, size, size, 3), factors (fx, fy), (left, top)).

    A box in the letterboxed frame maps back with ``(x − left) / fx``, ``(y − top) / fy``.
    """
    from visionkit.data.augment.geometric import letterbox_params

    x = tf.cast(images, tf.float32)
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    _, new_h, new_w, top, left = letterbox_params(h, w, size)
    resized = tf.image.resize(x, tf.stack([new_h, new_w]), method="bilinear")
    padded = tf.pad(
        resized,
        [[0, 0], [top, size - new_h - top], [left, size - new_w - left], [0, 0]],
        constant_values=PAD_VALUE,
    )
    padded = tf.ensure_shape(padded, [None, size, size, 3])
    factors = (
        tf.cast(new_w, tf.float32) / tf.cast(w, tf.float32),
        tf.cast(new_h, tf.float32) / tf.cast(h, tf.float32),
    )
    return padded, factors, (tf.cast(left, tf.float32), tf.cast(top, tf.float32))


def nms(
    raw: tf.Tensor,
    size: tuple[int, int],
    num_classes: int,
    *,
    conf: float,
    iou: float,
    max_det: int,
):
    """Raw head → (boxes xyxy (B, K, 4), scores (B, K), classes (B, K) int32, valid (B,)),
    as ``DetectTask.detections`` does (YOLOv1 or the anchor-free head)."""
    if len(raw.shape) == 4:
        from visionkit.models.yolov1 import postprocess_yolov1

        return postprocess_yolov1(
            raw,
            size,
            num_classes=num_classes,
            score_threshold=conf,
            iou_threshold=iou,
            max_detections=max_det,
        )
    from visionkit.models.yolo.nms import postprocess

    reg_max = (int(raw.shape[-1]) - num_classes) // 4
    return postprocess(
        raw, size, reg_max=reg_max, score_threshold=conf, iou_threshold=iou, max_detections=max_det
    )


def detect_serving(model, config: dict[str, Any]):
    """The ``serving_default`` function of a detector (see the module docstring)."""
    size = model_size(model)
    if size[0] != size[1]:
        raise ValueError(f"detectors letterbox to a square input; {model.name} takes {size}")
    conf, iou, max_det = nms_settings(config)
    num_classes = _num_classes(model, config)

    def serve(images):
        x, (fx, fy), (left, top) = letterbox_batch(images, size[0])
        if model.input_shape[-1] == 1:
            x = tf.image.rgb_to_grayscale(x)
        raw = tf.cast(model(x, training=False), tf.float32)
        boxes, scores, classes, valid = nms(
            raw, size, num_classes, conf=conf, iou=iou, max_det=max_det
        )
        h = tf.cast(tf.shape(images)[1], tf.float32)
        w = tf.cast(tf.shape(images)[2], tf.float32)
        x1 = tf.clip_by_value((boxes[..., 0] - left) / fx, 0.0, w)
        y1 = tf.clip_by_value((boxes[..., 1] - top) / fy, 0.0, h)
        x2 = tf.clip_by_value((boxes[..., 2] - left) / fx, 0.0, w)
        y2 = tf.clip_by_value((boxes[..., 3] - top) / fy, 0.0, h)
        rows = tf.range(tf.shape(boxes)[1])[None, :] < valid[:, None]
        boxes = tf.where(rows[..., None], tf.stack([x1, y1, x2, y2], axis=-1), 0.0)
        return {"boxes": boxes, "scores": scores, "classes": classes, "num_detections": valid}

    return serve


def _num_classes(model, config: dict[str, Any]) -> int:
    if config.get("class_names"):
        return len(config["class_names"])
    if config.get("num_classes"):
        return int(config["num_classes"])
    raise ValueError(
        f"{model.name}: the number of classes is unknown (config.yaml has no class_names); "
        "export from the run folder"
    )


def postprocess_signature(num_classes: int, conf: float, iou: float, max_det: int) -> str:
    """The ``experimental_implements`` text that the converter turns into
    ``TFLite_Detection_PostProcess`` with these attributes (regular per-class NMS)."""
    attrs = [
        ("max_detections", "i", max_det),
        ("max_classes_per_detection", "i", 1),
        ("detections_per_class", "i", max_det),
        ("use_regular_nms", "b", "true"),
        ("nms_score_threshold", "f", conf),
        ("nms_iou_threshold", "f", iou),
        ("y_scale", "f", 1.0),
        ("x_scale", "f", 1.0),
        ("h_scale", "f", 1.0),
        ("w_scale", "f", 1.0),
        ("num_classes", "i", num_classes),
    ]
    parts = ['name: "TFLite_Detection_PostProcess"']
    for key, kind, value in attrs:
        text = f"{value:f}" if kind == "f" else str(value)
        parts.append(f'attr {{ key: "{key}" value {{ {kind}: {text} }} }}')
    return " ".join(parts)


# Name scope of the decoding ops in TFLite graphs (box distributions → boxes, sigmoid).
DECODE_SCOPE = "decode"


def tflite_postprocess_fn(model, config: dict[str, Any]):
    """uint8 (1, S, S, 3) → the ``TFLite_Detection_PostProcess`` outputs (module docstring)."""
    if is_yolov1(model):
        raise ValueError(
            "YOLOv1 has no TFLite post-processing export; export its raw head (detection_nms=False)"
        )
    from visionkit.models.yolo.anchors import decode

    size = model_size(model)
    conf, iou, max_det = nms_settings(config)
    num_classes = _num_classes(model, config)
    reg_max = (int(model.output_shape[-1]) - num_classes) // 4
    anchors_count = int(model.output_shape[1])
    anchors = tf.constant(np.tile([[0.0, 0.0, 1.0, 1.0]], (anchors_count, 1)), tf.float32)

    @tf.function(experimental_implements=postprocess_signature(num_classes, conf, iou, max_det))
    def detection_postprocess(box_encodings, class_predictions, anchor_boxes):
        # Stands for the TFLite op: the converter replaces this function by it.
        zero = tf.constant(0.0, tf.float32)
        return zero, zero, zero, zero

    def fn(images):
        raw = tf.cast(
            model(to_model_input(images, model, resize=False), training=False), tf.float32
        )
        with tf.name_scope(DECODE_SCOPE):
            boxes, scores = decode(raw, size, reg_max=reg_max)
            scale = tf.constant([size[1], size[0], size[1], size[0]], tf.float32)
            # slices, not tf.unstack: a multi-output op gets a joined name in the calibrated
            # graph that the float-scope list (taken from the float graph) would miss
            unit = boxes / scale
            x1, y1, x2, y2 = (unit[..., i] for i in range(4))
            eps = 1e-6
            encodings = tf.stack(
                [
                    (y1 + y2) / 2,
                    (x1 + x2) / 2,
                    tf.math.log(tf.maximum(y2 - y1, eps)),
                    tf.math.log(tf.maximum(x2 - x1, eps)),
                ],
                axis=-1,
            )
        out = detection_postprocess(encodings, scores, anchors)
        return {"boxes": out[0], "classes": out[1], "scores": out[2], "num_detections": out[3]}

    return fn


# -- parity ---------------------------------------------------------------------------
def _from_raw(
    raw: np.ndarray, size, num_classes: int, config: dict[str, Any], score: float
) -> list[dict]:
    _, iou, max_det = nms_settings(config)
    boxes, scores, classes, valid = (
        t.numpy()
        for t in nms(tf.constant(raw), size, num_classes, conf=score, iou=iou, max_det=max_det)
    )
    return [
        {
            "boxes": boxes[i, : valid[i]],
            "scores": scores[i, : valid[i]],
            "classes": classes[i, : valid[i]],
        }
        for i in range(len(valid))
    ]


def from_postprocess(outputs: dict[str, np.ndarray], size) -> list[dict]:
    """TFLite post-process outputs → xyxy pixel detections in the letterboxed frame."""
    scale = np.array([size[0], size[1], size[0], size[1]], np.float32)  # y, x, y, x
    out = []
    for i in range(len(outputs["num_detections"])):
        n = int(outputs["num_detections"][i])
        yxyx = np.asarray(outputs["boxes"][i, :n], np.float32) * scale
        out.append(
            {
                "boxes": yxyx[:, [1, 0, 3, 2]],
                "scores": np.asarray(outputs["scores"][i, :n], np.float32),
                "classes": np.asarray(outputs["classes"][i, :n]).astype(np.int32),
            }
        )
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes a (N, 4) and b (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match(a: dict, b: dict, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Greedy same-class matches (index in a, index in b) with IoU ≥ ``threshold``,
    in order of a's scores."""
    if not len(a["boxes"]) or not len(b["boxes"]):
        return []
    ious = _iou(a["boxes"], b["boxes"])
    ious[a["classes"][:, None] != b["classes"][None, :]] = 0.0
    pairs, used = [], set()
    for i in np.argsort(-a["scores"], kind="stable"):
        order = [
            j
            for j in np.argsort(-ious[i], kind="stable")
            if j not in used and ious[i, j] >= threshold
        ]
        if order:
            used.add(order[0])
            pairs.append((int(i), int(order[0])))
    return pairs


def _keep(dets: dict, score: float) -> dict:
    keep = dets["scores"] >= score
    return {k: v[keep] for k, v in dets.items()}


class DetectAccumulator:
    """COCO ``map50_95``/``map50`` and ``agreement``: 2·matches / (detections of this
    model + of Keras) at the run's ``conf`` threshold, what ``predict`` shows (1.0 when
    neither detects anything).

    Raw-head outputs are decoded with NMS at score 0.001 for mAP (as validation does);
    TFLite post-processed outputs carry their built-in threshold (``export_conf``, 0.001 by
    default, so their mAP counts the same candidates), and their ``max_abs_diff`` is the
    largest score difference of matched detections (``box_max_abs_diff_px`` for boxes).
    """

    metric = "map50_95"

    def __init__(self, class_names: list[str], config: dict[str, Any], size: tuple[int, int]):
        self.class_names = class_names
        self.config = config
        self.size = size
        self.conf = float(config.get("conf", 0.25))
        self.file_conf = nms_settings(config)[0]
        self.truths: list[dict] = []
        self.predictions: list[dict] = []
        self.matched = 0
        self.total = 0
        self.score_diff = 0.0
        self.box_diff = 0.0
        self.postprocessed = False

    def update(self, outputs, targets, reference) -> None:
        count = len(self.class_names)
        if isinstance(outputs, dict):
            self.postprocessed = True
            preds = from_postprocess(outputs, self.size)
        else:
            preds = _from_raw(
                np.asarray(outputs), self.size, count, self.config, EVAL_SCORE_THRESHOLD
            )
        refs = _from_raw(np.asarray(reference), self.size, count, self.config, self.conf)
        for i, (pred, ref) in enumerate(zip(preds, refs, strict=True)):
            self.predictions.append(pred)
            if targets is not None:
                keep = targets["classes"][i] >= 0
                self.truths.append(
                    {"boxes": targets["boxes"][i][keep], "classes": targets["classes"][i][keep]}
                )
            shown = _keep(pred, self.conf)
            pairs = match(ref, shown)
            self.matched += len(pairs)
            self.total += len(ref["boxes"]) + len(shown["boxes"])
            for a, b in pairs:
                self.score_diff = max(
                    self.score_diff, abs(float(ref["scores"][a]) - float(shown["scores"][b]))
                )
                self.box_diff = max(
                    self.box_diff, float(np.abs(ref["boxes"][a] - shown["boxes"][b]).max())
                )

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.truths:
            from visionkit.evaluate.detection import evaluate_detections

            metrics = evaluate_detections(self.truths, self.predictions, self.class_names).metrics
            out.update(map50_95=metrics["map50_95"], map50=metrics["map50"])
        out["agreement"] = 1.0 if self.total == 0 else 2 * self.matched / self.total
        if self.postprocessed:
            out["max_abs_diff"] = self.score_diff
            out["box_max_abs_diff_px"] = self.box_diff
            out["nms_score_threshold"] = self.file_conf
        return out
