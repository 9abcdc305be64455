"""tf.data input pipelines for classification, detection and segmentation.

``build_pipeline`` turns a canonical :class:`~visionkit.data.types.Dataset` into a batched
``tf.data.Dataset``. Stages: decode → optional cache → (shuffle) → augment → resize or
letterbox → batch → (batch mixing) → prefetch, with ``num_parallel_calls=AUTOTUNE``.

Parallelism: tf.data's autotuning model is off (``without_autotune``), so ``AUTOTUNE``
means one parallel call per CPU core and prefetch keeps its own buffer heuristic. In
TF 2.21 deleting an iterator of an autotuned pipeline often waits for the autotuning
thread's next wake-up, which comes at 1.27, 2.55, 5.11, 10.2 ... s after the iterator
started: a pass over the data took up to twice its time, and Keras makes a new iterator
every epoch and every validation (docs/benchmarks.md, "Throughput").

Element formats (``S`` = image size, ``B`` = batch):

* images: float32 (B, H, W, 3) with values in [0, 255] (models carry their own
  normalisation);
* classify: ``(images, labels)``, labels one-hot float32 (B, C) (soft after MixUp/CutMix);
* detect: ``(images, {"boxes": float32 (B, max_boxes, 4), "classes": int32 (B, max_boxes)})``,
  boxes ``xyxy`` in pixels of the output image, padding rows are boxes 0 with class −1;
* segment: ``(images, masks)``, masks int32 (B, H, W) class ids, 255 = ignore (padding and
  rotation fill, and 255 in the source unless ``mask_value_map`` maps it).

Decoding: file images with ``tf.io.decode_image`` in the graph; the paths in ``needs_pil``
(EXIF-rotated, CMYK, 16-bit, palette, alpha, as flagged by the doctor) through
``tf.numpy_function(read_image)``; in-memory images from a stacked tensor (same shapes) or
a ``numpy_function`` (mixed shapes); TFRecord records (``Example.record``) read by offset
(a ``numpy_function`` around ``os.pread``), then parsed and decoded in the graph, masks
too. Other masks are read with PIL (palette PNGs keep their indices). Masks are remapped
through ``mask_value_map`` (a gather table, e.g. ``{255: 1}``).

Determinism: every random op is stateless, seeded from (seed, epoch, example index); the
shuffle order from (seed, epoch). The same seed gives identical batches in two runs;
each new iteration over the dataset (a Keras epoch) advances the epoch counter in
:class:`PipelineControls`, so epochs differ. ``controls.set_epoch(k)`` reproduces epoch
k (resume), ``controls.set_mosaic_prob(0.0)`` switches Mosaic off for the last epochs
(the pipeline must be built with ``mosaic_prob > 0`` for Mosaic to exist).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from visionkit.data.augment import AugmentConfig
from visionkit.data.augment import geometric as geo
from visionkit.data.augment.colour import colour_jitter, rand_augment
from visionkit.data.augment.mix import mixup_cutmix, mixup_detection
from visionkit.data.augment.mosaic import mosaic
from visionkit.data.errors import DataError
from visionkit.data.images import example_image, example_mask
from visionkit.data.types import TASKS, Dataset

AUTOTUNE = tf.data.AUTOTUNE
IGNORE = geo.IGNORE


class PipelineControls:
    """Run-time knobs of a built pipeline, held in ``tf.Variable`` s read inside the graph.

    ``epoch``: the epoch the next iteration will use (advanced by one per iteration).
    ``mosaic_prob`` / ``mixup_prob``: detection Mosaic / MixUp probabilities.
    """

    def __init__(self, mosaic_prob: float = 0.0, mixup_prob: float = 0.0, epoch: int = 0):
        self.epoch = tf.Variable(epoch, dtype=tf.int64, trainable=False, name="data_epoch")
        self.mosaic_prob = tf.Variable(mosaic_prob, dtype=tf.float32, trainable=False)
        self.mixup_prob = tf.Variable(mixup_prob, dtype=tf.float32, trainable=False)

    def set_epoch(self, epoch: int) -> None:
        self.epoch.assign(epoch)

    def set_mosaic_prob(self, prob: float) -> None:
        self.mosaic_prob.assign(prob)

    def set_mixup_prob(self, prob: float) -> None:
        self.mixup_prob.assign(prob)

    def _next_epoch(self) -> tf.Tensor:
        return self.epoch.assign_add(1) - 1


def resolve_augment(
    augment: AugmentConfig | dict | bool | None, task: str, training: bool
) -> AugmentConfig:
    """``None``/``True`` → task defaults, ``False`` → off, dict → checked overrides.
    Evaluation pipelines (``training=False``) never augment."""
    if not training or augment is False:
        return AugmentConfig.off()
    if augment is None or augment is True:
        return AugmentConfig.for_task(task)
    if isinstance(augment, dict):
        return AugmentConfig.from_dict(augment, task)
    if isinstance(augment, AugmentConfig):
        return augment
    raise TypeError(f"augment must be an AugmentConfig, dict, bool or None, got {type(augment)}")


def parse_imgsz(imgsz: int | tuple | list) -> tuple[int, int]:
    """``640`` → (640, 640); ``(h, w)`` kept."""
    if isinstance(imgsz, (tuple, list)):
        if len(imgsz) != 2:
            raise ValueError(f"imgsz must be an int or (height, width), got {imgsz!r}")
        return int(imgsz[0]), int(imgsz[1])
    return int(imgsz), int(imgsz)


def mask_lookup_table(mapping: dict[int, int] | None) -> np.ndarray | None:
    """A gather table for ``mapping`` (identity elsewhere), or None."""
    if not mapping:
        return None
    size = max(256, max(int(k) for k in mapping) + 1)
    table = np.arange(size, dtype=np.int32)
    for k, v in mapping.items():
        table[int(k)] = int(v)
    return table


def _as_rgb(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    return np.ascontiguousarray(arr.astype(np.uint8))


def _as_mask(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return np.ascontiguousarray(arr.astype(np.int32))


class ExampleTable:
    """The examples of a Dataset as tensors, with ``decode(index)`` for use in tf.data.

    ``decode`` returns a dict: ``image`` uint8 (H, W, 3), ``index`` int64, and per task
    ``label`` int32 / ``boxes`` float32 (N, 4) + ``classes`` int32 (N,) / ``mask`` int32
    (H, W). Random access lets Mosaic and MixUp fetch partner examples by index.
    """

    def __init__(
        self,
        dataset: Dataset,
        task: str,
        needs_pil: set[str] | tuple = (),
        mask_value_map: dict[int, int] | None = None,
    ):
        self.task = task
        self.examples = dataset.examples
        self.n = len(self.examples)
        if self.n == 0:
            raise DataError(
                f"{dataset.root or 'the dataset'}: no examples to build a pipeline from "
                "(empty, or every file was faulty: `visionkit data check` lists why)"
            )
        exs = self.examples
        needs_pil = {str(p) for p in needs_pil}
        if all(e.image_path is not None for e in exs):
            self.mode = "files"
            self.paths = tf.constant([str(e.image_path) for e in exs])
            pil = [str(e.image_path) in needs_pil for e in exs]
            self.any_pil = any(pil)
            self.pil = tf.constant(pil)
        elif all(e.image is not None for e in exs) and len({e.image.shape for e in exs}) == 1:
            self.mode = "stacked"
            self.images = tf.constant(np.stack([_as_rgb(e.image) for e in exs]))
        elif all(e.record is not None and e.image is None for e in exs):
            self.mode = "records"  # TFRecord shards, read by offset (visionkit.data.tfrecord)
        else:
            self.mode = "python"
        if task == "classify":
            if any(e.label is None for e in exs):
                raise ValueError("classification examples need a label")
            self.labels = tf.constant([int(e.label) for e in exs], tf.int32)
        elif task == "detect":
            boxes = [np.zeros((0, 4), np.float32) if e.boxes is None else e.boxes for e in exs]
            classes = [
                np.zeros((0,), np.int32) if e.box_classes is None else e.box_classes for e in exs
            ]
            lengths = [len(np.reshape(b, (-1, 4))) for b in boxes]
            self.boxes = tf.RaggedTensor.from_row_lengths(
                np.concatenate([np.reshape(b, (-1, 4)) for b in boxes]).astype(np.float32),
                lengths,
            )
            self.classes = tf.RaggedTensor.from_row_lengths(
                np.concatenate([np.reshape(c, (-1,)) for c in classes]).astype(np.int32),
                lengths,
            )
        elif task == "segment":
            if any(e.mask is None and e.mask_path is None and e.record is None for e in exs):
                raise ValueError("segmentation examples need a mask, a mask_path or a record")
            table = mask_lookup_table(mask_value_map)
            self.mask_table = None if table is None else tf.constant(table)

    def __len__(self) -> int:
        return self.n

    # --- image ---------------------------------------------------------------
    def _py_image(self, i) -> np.ndarray:
        return _as_rgb(example_image(self.examples[int(i)]))

    def _py_record(self, i) -> bytes:
        from visionkit.data.tfrecord import read_record

        return read_record(self.examples[int(i)].record)

    def _record(self, i: tf.Tensor, key: str) -> tf.Tensor:
        """Feature ``key`` (bytes) of example ``i``'s record: read by offset, parsed in TF."""
        raw = tf.numpy_function(self._py_record, [i], tf.string, stateful=False)
        spec = {key: tf.io.FixedLenFeature([], tf.string)}
        return tf.io.parse_single_example(tf.reshape(raw, []), spec)[key]

    def _py_image_tf(self, i) -> tf.Tensor:
        img = tf.numpy_function(self._py_image, [i], tf.uint8, stateful=False)
        return tf.ensure_shape(img, [None, None, 3])

    def decode_image(self, i: tf.Tensor) -> tf.Tensor:
        """uint8 (H, W, 3) image of example ``i``."""
        if self.mode == "stacked":
            return tf.gather(self.images, i)
        if self.mode == "python":
            return self._py_image_tf(i)
        if self.mode == "records":
            data = self._record(i, "image/encoded")  # stored so that TF decodes it exactly
            img = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.ensure_shape(img, [None, None, 3])

        def graph():
            data = tf.io.read_file(self.paths[i])
            img = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.ensure_shape(img, [None, None, 3])

        if not self.any_pil:
            return graph()
        return tf.cond(self.pil[i], lambda: self._py_image_tf(i), graph)

    # --- targets -------------------------------------------------------------
    def _py_mask(self, i) -> np.ndarray:
        return _as_mask(example_mask(self.examples[int(i)]))

    def decode_mask(self, i: tf.Tensor) -> tf.Tensor:
        if self.mode == "records":  # a 16-bit PNG in the record
            data = self._record(i, "mask/encoded")
            m = tf.cast(tf.io.decode_png(data, channels=1, dtype=tf.uint16)[..., 0], tf.int32)
        else:
            m = tf.numpy_function(self._py_mask, [i], tf.int32, stateful=False)
        m = tf.ensure_shape(m, [None, None])
        if self.mask_table is not None:
            size = tf.shape(self.mask_table)[0]
            looked = tf.gather(self.mask_table, tf.clip_by_value(m, 0, size - 1))
            m = tf.where((m >= 0) & (m < size), looked, m)
        return m

    def decode(self, i: tf.Tensor) -> dict:
        i = tf.cast(i, tf.int64)
        out = {"image": self.decode_image(i), "index": i}
        if self.task == "classify":
            out["label"] = tf.gather(self.labels, i)
        elif self.task == "detect":
            out["boxes"] = self.boxes[i]
            out["classes"] = self.classes[i]
        else:
            out["mask"] = self.decode_mask(i)
        return out


def element_seed(seed: int, epoch: tf.Tensor, index: tf.Tensor, salt: int = 0) -> tf.Tensor:
    """Stateless seed (shape (2,), int64) from (seed, epoch, example index, salt)."""
    s = tf.constant([seed, salt], tf.int64)
    s = tf.random.experimental.stateless_fold_in(s, tf.cast(epoch, tf.int64))
    return tf.random.experimental.stateless_fold_in(s, tf.cast(index, tf.int64))


def pad_boxes(boxes: tf.Tensor, classes: tf.Tensor, max_boxes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Truncate/pad to ``max_boxes`` rows: boxes (max_boxes, 4) zeros, classes −1."""
    boxes = boxes[:max_boxes]
    classes = classes[:max_boxes]
    pad = max_boxes - tf.shape(boxes)[0]
    boxes = tf.pad(boxes, [[0, pad], [0, 0]])
    classes = tf.pad(classes, [[0, pad]], constant_values=-1)
    return tf.ensure_shape(boxes, [max_boxes, 4]), tf.ensure_shape(classes, [max_boxes])


class _Augmenter:
    """Per-example transform of a decoded element to the model's input size."""

    def __init__(self, table, task, size, cfg, training, letterbox, seed, controls, max_boxes):
        self.table, self.task, self.size, self.cfg = table, task, size, cfg
        self.training, self.letterbox, self.seed = training, letterbox, seed
        self.controls, self.max_boxes = controls, max_boxes

    def _sample(self, ex: dict, cast: bool = True) -> dict:
        """The image (float32 unless ``cast=False``) and the task's targets of ``ex``."""
        s = {"image": tf.cast(ex["image"], tf.float32) if cast else ex["image"]}
        for k in ("boxes", "classes", "mask"):
            if k in ex:
                s[k] = ex[k]
        return s

    def _fit(self, s: dict) -> dict:
        """Deterministic resize (or letterbox) to the output size."""
        h, w = self.size
        if self.letterbox:
            return geo.letterbox(s, h, self.cfg.pad_value)
        return geo.resize(s, (h, w))

    def _detect_single(self, s: dict, seed: tf.Tensor) -> dict:
        c = self.cfg
        s_crop, s_scale = geo.split_seed(seed, 2)
        s = geo.random_crop(
            s, s_crop, c.crop_prob, c.crop_area, c.crop_ratio, c.min_box_area_frac, c.min_box_side
        )
        if c.scale == (1.0, 1.0) and not c.crop_prob:
            return self._fit(s)
        return geo.random_scale_place(
            s,
            self.size[0],
            s_scale,
            c.scale,
            self.letterbox,
            c.pad_value,
            c.min_box_area_frac,
            c.min_box_side,
        )

    def _partner(self, seed: tf.Tensor) -> tuple[tf.Tensor, dict]:
        j = tf.random.stateless_uniform([], seed, 0, self.table.n, dtype=tf.int64)
        return j, self._sample(self.table.decode(j))

    def _evaluation(self, ex: dict) -> dict:
        """Resize (or letterbox) only. The uint8 image goes into the bilinear resize as it
        is: the resize computes in float32 either way, so the pixels are those of casting
        first, without a float copy of the full-size image (5–14 % less CPU for the JPEG
        pipeline of ``predict`` and ``val``)."""
        s = self._fit(self._sample(ex, cast=False))
        s["image"] = tf.cast(s["image"], tf.float32)
        return self._output(ex, s)

    def __call__(self, ex: dict) -> dict:
        if not self.training:
            return self._evaluation(ex)
        c, size = self.cfg, self.size
        s = self._sample(ex)
        seed = element_seed(self.seed, ex["epoch"], ex["index"])
        sd = geo.split_seed(seed, 10)
        if self.task == "classify":
            if c.crop_prob > 0:
                s = geo.random_resized_crop(s, size, sd[0], c.crop_area, c.crop_ratio)
            else:
                s = self._fit(s)
            s = geo.random_flip(s, sd[1], c.flip_prob)
            s = geo.random_rot90(s, sd[9], c.rot90_prob)
            if c.randaugment_ops > 0:
                s["image"] = rand_augment(
                    s["image"], sd[2], c.randaugment_ops, c.randaugment_magnitude
                )
        elif self.task == "detect":
            s = self._detect_train(s, sd)
        else:
            s = geo.random_crop(
                s,
                sd[0],
                c.crop_prob,
                c.crop_area,
                c.crop_ratio,
                c.min_box_area_frac,
                c.min_box_side,
            )
            if c.scale == (1.0, 1.0):
                s = self._fit(s)
            else:
                s = geo.random_scale_place(s, size[0], sd[1], c.scale, self.letterbox, c.pad_value)
            s = geo.random_rotate(s, sd[2], c.rotate_degrees, c.rotate_prob, c.pad_value)
            s = geo.random_elastic(s, sd[8], c.elastic_prob, c.elastic_sigma, c.elastic_grid)
            s = geo.random_flip(s, sd[3], c.flip_prob)
            s = geo.random_rot90(s, sd[9], c.rot90_prob)
        s["image"] = colour_jitter(
            s["image"], sd[4], c.brightness, c.contrast, c.saturation, c.hue, c.colour_prob
        )
        return self._output(ex, s)

    def _output(self, ex: dict, s: dict) -> dict:
        """The element at the output size: image, index, epoch and the task's targets."""
        c, size = self.cfg, self.size
        out = {"image": tf.ensure_shape(s["image"], [size[0], size[1], 3]), "index": ex["index"]}
        out["epoch"] = ex["epoch"]
        if self.task == "classify":
            out["label"] = ex["label"]
        elif self.task == "detect":
            s = geo.filter_small(s, c.min_box_side if self.training else 0.0)
            out["boxes"], out["classes"] = pad_boxes(s["boxes"], s["classes"], self.max_boxes)
        else:
            out["mask"] = tf.ensure_shape(s["mask"], [size[0], size[1]])
        return out

    def _detect_train(self, s: dict, sd: list) -> dict:
        c, size = self.cfg, self.size[0]
        if c.mosaic_prob > 0:

            def _mosaic():
                seeds = geo.split_seed(sd[5], 4)
                parts = [s] + [self._partner(seeds[k])[1] for k in range(3)]
                return mosaic(
                    parts,
                    size,
                    seeds[3],
                    c.mosaic_scale,
                    c.pad_value,
                    c.min_box_area_frac,
                    c.min_box_side,
                )

            s = tf.cond(
                geo.uniform(sd[6]) < self.controls.mosaic_prob,
                _mosaic,
                lambda: self._detect_single(s, sd[0]),
            )
        else:
            s = self._detect_single(s, sd[0])
        s = geo.random_flip(s, sd[1], c.flip_prob)
        if c.mixup_prob > 0:
            s_partner, s_aug, s_mix, s_apply = geo.split_seed(sd[7], 4)

            def _mix():
                other = self._detect_single(self._partner(s_partner)[1], s_aug)
                return mixup_detection(s, other, s_mix, c.mixup_alpha)

            s = tf.cond(geo.uniform(s_apply) < self.controls.mixup_prob, _mix, lambda: dict(s))
        return s


def build_pipeline(
    dataset: Dataset,
    *,
    task: str | None = None,
    imgsz: int | tuple = 224,
    batch: int = 32,
    training: bool = False,
    augment: AugmentConfig | dict | bool | None = None,
    seed: int = 0,
    cache: bool | str = False,
    shuffle: bool | None = None,
    letterbox: bool | None = None,
    max_boxes: int = 100,
    needs_pil: set[str] | tuple = (),
    drop_remainder: bool = False,
    mask_value_map: dict[int, int] | None = None,
    controls: PipelineControls | None = None,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """Batched tf.data pipeline for ``dataset`` (element formats: module docstring).

    Args:
      task: defaults to ``dataset.task``.
      imgsz: output size, int (square) or (height, width); square for detection/letterbox.
      training: augment (per ``augment``) and shuffle; evaluation only resizes/letterboxes.
      augment: AugmentConfig, dict of overrides of the task defaults, True/None (defaults)
        or False (off).
      seed: base of every random draw (shuffle order and augmentation).
      cache: True caches decoded images in memory, a string caches to that file prefix.
        Cached or not, Mosaic/MixUp partners are decoded from the files.
      shuffle: defaults to ``training``.
      letterbox: keep aspect and pad (default True for detect, False otherwise).
      max_boxes: detection boxes per image after padding/truncation.
      needs_pil: image paths to decode with PIL (``read_image``) instead of TF.
      drop_remainder: drop the last incomplete batch.
      mask_value_map: mask value remapping, e.g. ``{255: 1}``.
      controls: a :class:`PipelineControls` to steer epoch/Mosaic/MixUp; one is created
        otherwise. Either way it is attached to the returned dataset as ``.controls``.
      prefetch: overlap the next batches with the model's step (``prefetch(AUTOTUNE)``);
        False only to measure what prefetching gains (bench/train_throughput.py).
    """
    task = task or dataset.task
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    cfg = resolve_augment(augment, task, training)
    size = parse_imgsz(imgsz)
    shuffle = training if shuffle is None else shuffle
    letterbox = (task == "detect") if letterbox is None else letterbox
    square_needed = letterbox or (training and task != "classify")
    if square_needed and size[0] != size[1]:
        raise ValueError(f"imgsz must be square for letterbox/{task} training, got {size}")
    if training and cfg.rot90_prob > 0 and size[0] != size[1]:
        raise ValueError(
            f"augment rot90_prob={cfg.rot90_prob} turns images by 90°, which needs a square "
            f"imgsz, got {size}; use a square imgsz or rot90_prob: 0"
        )
    controls = controls or PipelineControls(cfg.mosaic_prob, cfg.mixup_prob)
    if mask_value_map is None:
        mask_value_map = getattr(
            dataset, "mask_value_map", None
        )  # e.g. {0: 0, 255: 1} for binary masks
    table = ExampleTable(dataset, task, needs_pil, mask_value_map)
    n = len(table)
    augmenter = _Augmenter(table, task, size, cfg, training, letterbox, seed, controls, max_boxes)

    epochs = tf.data.Dataset.from_tensors(0).map(lambda _: controls._next_epoch())
    if cache:
        base = tf.data.Dataset.range(n).map(table.decode, num_parallel_calls=AUTOTUNE)
        base = base.cache("" if cache is True else str(cache))

        def per_epoch(e):
            # the order of epoch e depends on (seed, e) only: a resumed run, or one whose
            # dataset is iterated once more (a distribution strategy peeks at a batch),
            # sees the same order per epoch as an uninterrupted one
            ordered = base
            if shuffle:
                # shuffle pairs a tensor seed with the graph seed and fails when that is 0
                # (TF's get_seed compares the pair with (0, 0)): give this traced function's
                # own graph a fixed seed; the process-wide seed is left alone
                tf.random.set_seed(1)
                epoch_seed = element_seed(seed, e, tf.constant(0, tf.int64), salt=2)[0]
                ordered = base.shuffle(n, seed=epoch_seed, reshuffle_each_iteration=False)
            # each element with its epoch, zipped: a per-element map would cost ~0.1 ms each
            return tf.data.Dataset.zip((ordered, tf.data.Dataset.from_tensors(e).repeat()))

        def load_cached(ex, e):
            return augmenter({**ex, "epoch": e})

        ds = epochs.flat_map(per_epoch).map(load_cached, num_parallel_calls=AUTOTUNE)
    else:

        def per_epoch(e):
            order = tf.range(n, dtype=tf.int64)
            if shuffle:
                keys = tf.random.stateless_uniform([n], tf.stack([tf.constant(seed, tf.int64), e]))
                order = tf.gather(order, tf.argsort(keys))
            # (index, epoch) pairs as slices: a per-element map would cost ~0.1 ms each
            return tf.data.Dataset.from_tensor_slices((order, tf.fill([n], e)))

        def load(i, e):
            return augmenter({**table.decode(i), "epoch": e})

        ds = epochs.flat_map(per_epoch).map(load, num_parallel_calls=AUTOTUNE)

    ds = ds.batch(batch, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    num_batches = n // batch if drop_remainder else -(-n // batch)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    ds = ds.map(
        _Finisher(task, dataset.num_classes, cfg, training, seed),
        num_parallel_calls=AUTOTUNE,
    )
    if prefetch:
        ds = ds.prefetch(AUTOTUNE)
    ds = without_autotune(ds)
    ds.controls = controls  # tf.data datasets are plain Python objects: attach the knobs
    return ds


def without_autotune(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` with tf.data's autotuning model switched off (module docstring: deleting an
    autotuned iterator can stall for as long as the pass took). ``AUTOTUNE`` parallelism
    becomes one call per core; the option carries to datasets built on top of ``ds``."""
    options = tf.data.Options()
    options.autotune.enabled = False
    # what AUTOTUNE falls back to is min(initial_parallelism, the runner's threads), and
    # initial_parallelism defaults to 16: raise it so hosts with more cores use them all
    options.autotune.initial_parallelism = os.cpu_count() or 1
    return ds.with_options(options)


class _Finisher:
    """Batch-level step: one-hot labels, MixUp/CutMix (classify), output tuples."""

    def __init__(self, task, num_classes, cfg, training, seed):
        self.task, self.cfg, self.training, self.seed = task, cfg, training, seed
        self.num_classes = num_classes

    def __call__(self, b: dict):
        images = b["image"]
        if self.task == "classify":
            labels = tf.one_hot(b["label"], self.num_classes, dtype=tf.float32)
            c = self.cfg
            if self.training and (c.mixup_prob > 0 or c.cutmix_prob > 0):
                seed = element_seed(self.seed, b["epoch"][0], b["index"][0], salt=1)
                images, labels, _ = mixup_cutmix(
                    images, labels, seed, c.mixup_prob, c.mixup_alpha, c.cutmix_prob, c.cutmix_alpha
                )
            return images, labels
        if self.task == "detect":
            return images, {"boxes": b["boxes"], "classes": b["classes"]}
        return images, b["mask"]
