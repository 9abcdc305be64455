"""The training loop shared by every task: run folder, checked data, stages, resume.

A task (``visionkit.tasks``) supplies the model, the loss and metrics, and validation; this
module does everything else once: resolve and save the config, open the run folder, load
and check the data, build the tf.data pipelines, run each stage of the recipe with the
callbacks (best checkpoint, early stopping, history, TensorBoard, resume backups), then
validate the best checkpoint and write ``metrics.json`` and the plots.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionkit.io import atomic_path, write_json
from visionkit.models.saving import load_model
from visionkit.tasks.registry import is_available
from visionkit.train.runs import Run, open_run, save_faults, save_run_config


@dataclass
class RunResult:
    """What a finished run produced."""

    run: Run
    metrics: dict[str, Any]
    config: dict[str, Any]
    seconds: float
    test_metrics: dict[str, Any] | None = None
    chief: bool = True  # False on the other workers of a multi-worker run (they write nothing)

    def summary(self) -> str:
        task = self.config["task"]
        keys = {
            "classify": ("accuracy", "top5_accuracy"),
            "detect": ("map50", "map50_95"),
            "segment": ("miou", "dice", "pixel_accuracy"),
        }[task]

        def numbers(metrics: dict[str, Any]) -> str:
            return ", ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics)

        split = self.metrics.get("split", "val")
        test = ""
        if self.test_metrics:
            test = (
                f"\n  test: {numbers(self.test_metrics)} on {self.test_metrics['num_examples']} examples "
                f"({self.run.dir / 'test' / 'metrics.json'})"
            )
        pngs = ", ".join(sorted(p.name for p in self.run.dir.glob("*.png")))
        scored = (
            f"refit on {self.metrics.get('train_examples')} examples, no validation"
            if self.config.get("refit")
            else f"{split}: {numbers(self.metrics)} on {self.metrics.get('num_examples', '?')} examples"
        )
        return (
            f"\nrun {self.run.dir} finished in {self.seconds:.0f} s\n"
            f"  {scored}{test}\n"
            f"  model: {self.run.model}\n"
            f"  plots: {pngs}"
            + (
                f"\n  predict: visionkit {task} predict model={self.run.dir} source=PATH"
                f"\n  evaluate on test data: visionkit {task} val model={self.run.dir} data=TEST_PATH"
                if is_available(task, "predict")
                else ""
            )
        )


def _setup_numerics(config: dict[str, Any]) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(config["seed"]))
    if config.get("deterministic"):
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(config["precision"])


# What a resumed run may change: everything else must match the interrupted run. The
# strategy may change with the machine (the global batch then follows the replicas).
RESUME_CHANGEABLE = frozenset(
    (
        "verbose",
        "patience",
        "resume",
        "out",
        "name",
        "exist_ok",
        "strategy",
        "tpu",
        "steps_per_execution",
    )
)


def _resumed_config(run: Run, config: dict[str, Any]) -> dict[str, Any]:
    """The interrupted run's config with the allowed changes; other changes are an error."""
    from visionkit.cfg import DERIVED_KEYS, defaults
    from visionkit.config import ConfigError

    saved, base = run.read_config(), defaults()
    changed = sorted(
        key
        for key, value in config.items()
        if key not in RESUME_CHANGEABLE
        and key not in DERIVED_KEYS
        and value != base.get(key)
        and value != saved.get(key)
    )
    if changed:
        raise ConfigError(
            f"resume=true continues {run.dir} as it was configured, but these keys differ: "
            f"{', '.join(f'{k}={config[k]!r} (run: {saved.get(k)!r})' for k in changed)}. "
            "Drop them, or start a new run from its weights with model={run.dir}."
        )
    # keys added to visionkit since the run was saved take their defaults
    changes = {k: config[k] for k in RESUME_CHANGEABLE if k in config}
    return {**base, **saved, **changes, "resume": True}


def _progress(run: Run) -> dict[str, Any]:
    path = run.state / "progress.json"
    return json.loads(path.read_text()) if path.exists() else {"completed": []}


def _best_so_far(run: Run, monitor: str, mode: str) -> float | None:
    if not run.history.exists():
        return None
    import pandas as pd

    frame = pd.read_csv(run.history)
    if monitor not in frame or frame[monitor].dropna().empty:
        return None
    return float(frame[monitor].max() if mode == "max" else frame[monitor].min())


def validation_epochs(start: int, end: int, every: int | None) -> int | list[int]:
    """Keras' ``validation_freq`` for a stage of epochs ``start+1 … end`` (1-based): every
    epoch for ``every`` ≤ 1, else the multiples of ``every`` and the stage's last epoch (so
    each stage ends on a validated, checkpoint-able model)."""
    every = int(every or 1)
    if every <= 1:
        return 1
    return [e for e in range(start + 1, end + 1) if e % every == 0 or e == end]


OPTIMIZERS = ("adamw", "adam", "sgd")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def check_settings(config: dict[str, Any]) -> None:
    """Values the key types cannot catch, checked before a run folder exists: a bad value
    is a ConfigError naming the key, not a crash after minutes of training."""
    from visionkit.config import ConfigError

    def positive(key: str, allow_zero: bool = False) -> None:
        value = config.get(key)
        if value is None:
            return
        if value < 0 or (value == 0 and not allow_zero):
            bound = "≥ 0" if allow_zero else "> 0"
            raise ConfigError(f"{key}={value}: must be {bound}")

    for key in ("epochs", "batch", "lr", "finetune_lr", "steps_per_execution"):
        positive(key)
    for key in ("head_epochs", "warmup_epochs", "patience", "weight_decay", "label_smoothing"):
        positive(key, allow_zero=True)
    positive("val_every")
    positive("ema_tau")
    decay = config.get("ema_decay")
    if decay is not None and not 0 < decay < 1:
        raise ConfigError(f"ema_decay={decay}: must lie strictly between 0 and 1 (e.g. 0.9999)")
    if config.get("optimizer") not in (None, *OPTIMIZERS):
        raise ConfigError(f"optimizer={config['optimizer']}: use one of {', '.join(OPTIMIZERS)}")
    if config.get("precision") not in (None, *PRECISIONS):
        raise ConfigError(f"precision={config['precision']}: use one of {', '.join(PRECISIONS)}")
    from visionkit.train.distribute import STRATEGIES

    if config.get("strategy") not in (None, *STRATEGIES):
        raise ConfigError(f"strategy={config['strategy']}: use one of {', '.join(STRATEGIES)}")
    freeze = config.get("freeze")
    if not (
        freeze in (None, "auto", "none", "backbone")
        or (isinstance(freeze, int) and not isinstance(freeze, bool) and freeze >= 0)
    ):
        raise ConfigError(f"freeze={freeze}: use auto, none, backbone or a number of blocks ≥ 0")
    cache = config.get("cache")
    if cache is not None and not isinstance(cache, (bool, str)):
        raise ConfigError(f"cache={cache}: use true, false or a folder path")
    fraction = config.get("val_fraction")
    if fraction is not None and not 0 < fraction < 1:
        raise ConfigError(f"val_fraction={fraction}: must lie strictly between 0 and 1")
    for key in ("val", "test"):
        value = config.get(key)
        if value and ":" not in str(value)[:8] and not Path(str(value)).exists():
            raise ConfigError(f"{key}={value}: no such file or folder")


def check_monitor(monitor: str, names: set[str]) -> None:
    """``monitor`` must be one of the run's logged metrics (``name`` or ``val_name``)."""
    from visionkit.config import ConfigError, closest_key

    logged = {*names, *(f"val_{n}" for n in names)}
    if monitor not in logged:
        near = closest_key(monitor, logged)
        hint = f" (did you mean {near!r}?)" if near else ""
        raise ConfigError(
            f"monitor={monitor} is not a metric of this run; choose one of "
            f"{', '.join(sorted(logged))}{hint}"
        )


def _open_worker_run(dist, config: dict[str, Any], resume: bool) -> Run:
    """The run folder of this process: the real one for the chief, a worker-local temporary
    copy for the other workers of a multi-worker run (they must not write the run folder).
    Resuming, a worker starts from the chief's saved state, which it must be able to read
    (``out`` on a filesystem every worker sees)."""
    if dist.is_chief:
        return open_run(
            config["out"], config.get("name"), exist_ok=bool(config["exist_ok"]), resume=resume
        )
    run = Run(dist.worker_dir() / "run")
    run.dir.mkdir(parents=True)
    if resume:
        from visionkit.config import ConfigError

        chief = Run(Path(config["out"]) / str(config.get("name")))
        if not chief.config.exists():
            raise ConfigError(
                f"resume=true on {dist.task_type} {dist.task_id}: cannot read the chief's run "
                f"folder {chief.dir}; resuming a multi-worker run needs out= on a filesystem "
                "every worker sees"
            )
        for name in ("config.yaml", "history.csv", "model.keras", "state"):
            source = chief.dir / name
            if source.is_dir():
                shutil.copytree(source, run.dir / name)
            elif source.exists():
                shutil.copy2(source, run.dir / name)
    return run


def train(task, config: dict[str, Any]) -> RunResult:
    """Train ``task`` with the resolved ``config`` (see ``visionkit/cfg/default.yaml``).

    Under a distribution strategy (``strategy``, see ``visionkit.train.distribute``) the
    model is built and compiled in the strategy's scope, ``batch`` is per replica (global
    batch ``batch × replicas``), learning rates scale with the replicas (``scale_lr``), and
    only the chief worker writes the run folder.
    """
    from visionkit.train.distribute import prepare_model, resolve_distribution, shard_input

    started = time.time()
    resume = bool(config.get("resume"))
    check_settings(config)
    # first, before any TensorFlow op (some modules below make tensors when imported):
    # multi-worker and TPU strategies set up the runtime
    dist = resolve_distribution(config)

    import keras

    from visionkit.data.pipeline import build_pipeline
    from visionkit.data.prepare import cache_location, prepare_data
    from visionkit.train.callbacks import (
        BestCheckpoint,
        DataEpoch,
        EarlyStopping,
        HistoryLog,
        ModelEMA,
    )
    from visionkit.train.recipes import make_optimizer, plan_stages

    try:
        run = _open_worker_run(dist, config, resume)
    except BaseException:
        dist.cleanup()
        raise
    if resume:
        config = _resumed_config(run, config)
    config = {
        **task.fill_defaults(config),
        "name": run.name if dist.is_chief else config.get("name"),
    }
    verbose = int(config["verbose"])
    if not config.get("data"):
        from visionkit.config import ConfigError

        dist.cleanup()
        raise ConfigError(
            f"visionkit {task.name} train needs data=PATH (a folder, an annotation file or tfds:NAME)"
        )

    _setup_numerics(config)
    try:
        data = prepare_data(config, task=task.name, progress=verbose > 0)
        refit = bool(config.get("refit"))
        if len(data.train) == 0 or (len(data.val) == 0 and not refit):
            from visionkit.data.errors import DataError

            raise DataError(
                f"{config['data']}: no usable training or validation examples (see data_faults.csv)"
            )
        print(data.summary())
        training = data.refit_training() if refit else data.train
        if refit:
            print(
                f"refit: training on all {len(training)} examples (training + validation) for "
                f"{config['epochs']} epochs without validation; the last weights are the model"
            )
        if dist.kind != "default":
            print(dist.describe())
        save_faults(run, data.faults)
        if not refit:
            check_monitor(config["monitor"], task.metric_names(len(data.class_names)))
        with dist.scope():
            model, info = task.build_model(config, data.class_names)
        global_batch = dist.global_batch(int(config["batch"]))
        config.update(
            class_names=list(data.class_names),
            num_classes=len(data.class_names),
            input_shape=list(model.input_shape[1:]),
            pretrained=info["pretrained"],
            backbone=info.get("backbone"),
            replicas=dist.replicas,
            global_batch=global_batch,
        )
        save_run_config(run, config)

        imgsz = tuple(config["input_shape"][:2])
        common = dict(
            task=task.name,
            imgsz=imgsz,
            batch=global_batch,
            seed=int(config["seed"]),
            needs_pil=data.needs_pil,
        )
        train_ds = build_pipeline(
            training,
            training=True,
            augment=config["augment"],
            cache=cache_location(config["cache"], training, "train"),
            # equal shares for every replica; one device keeps the last partial batch
            drop_remainder=dist.distributed and len(training) >= global_batch,
            **common,
        )
        controls = train_ds.controls
        train_ds = task.weight_training_batches(task.adapt_dataset(train_ds, model), config)
        train_ds = shard_input(train_ds, dist)
        val_ds, epoch_metrics = None, []
        if not refit:
            val_ds = build_pipeline(
                data.val,
                training=False,
                augment=False,
                cache=cache_location(config["cache"], data.val, "val"),
                **common,
            )
            epoch_metrics = task.epoch_metrics(config, val_ds)
            val_ds = shard_input(task.adapt_dataset(val_ds, model), dist)
        steps = int(train_ds.cardinality())

        scale = bool(config["scale_lr"])
        scaled = {
            **config,
            "lr": dist.scaled_lr(config["lr"], scale),
            "finetune_lr": dist.scaled_lr(config["finetune_lr"], scale),
        }
        stages = plan_stages(scaled, pretrained=info["pretrained"])
        progress = _progress(run)
        done = [s for s in stages if s.name in progress["completed"]]
        if done:
            with dist.scope():
                model = load_model(run.state / f"after_{done[-1].name}.keras", compile=False)
            print(f"resuming {run.dir}: stages done: {', '.join(s.name for s in done)}")
        monitor = config["monitor"]
        best = BestCheckpoint(run.model, monitor=monitor)
        best.best = _best_so_far(run, monitor, best.mode) if resume else None
        if best.best is None:
            best.best = float("-inf") if best.mode == "max" else float("inf")

        ema = (
            ModelEMA(decay=float(config["ema_decay"]), tau=float(config["ema_tau"]))
            if config.get("ema")
            else None
        )
        for stage in stages:
            if stage in done:
                continue
            task.set_trainable(model, stage, config)
            with dist.scope():
                model.compile(
                    optimizer=make_optimizer(scaled, stage, steps),
                    steps_per_execution=int(config["steps_per_execution"]),
                    **task.compile_args(config, len(data.class_names)),
                )
                # Left to fit, the optimizer's slots are created inside the first traced
                # step, and TensorFlow then traces the whole step a second time.
                model.optimizer.build(model.trainable_variables)
            prepare_model(model, dist, train_ds.element_spec)
            callbacks = [DataEpoch(controls)]
            if ema is not None:
                # Evaluate and checkpoint the moving average, as it is what gets shipped.
                callbacks.append(ema)
            callbacks += [
                *epoch_metrics,
                HistoryLog(run.history, stage.name),
                *([] if refit else [best]),
                keras.callbacks.BackupAndRestore(str(run.state / f"backup_{stage.name}")),
                keras.callbacks.TensorBoard(str(run.logs), write_graph=False, profile_batch=0),
            ]
            callbacks.extend(task.callbacks(config, controls, stage))
            if int(config["patience"]) > 0 and not refit:
                callbacks.append(
                    EarlyStopping(monitor=monitor, mode=best.mode, patience=int(config["patience"]))
                )
            print(
                f"stage {stage.name}: epochs {stage.start + 1}-{stage.end}, peak lr {stage.lr:g}, trains {stage.trainable}"
            )
            model.fit(
                train_ds,
                validation_data=val_ds,
                validation_freq=validation_epochs(stage.start, stage.end, config.get("val_every"))
                if val_ds is not None
                else 1,
                initial_epoch=stage.start,
                epochs=stage.end,
                callbacks=callbacks,
                shuffle=False,  # the pipeline shuffles, seeded per epoch
                verbose={0: 0, 1: 1, 2: 2}.get(verbose, 1),
            )
            with atomic_path(run.state / f"after_{stage.name}.keras") as tmp:
                model.save(tmp)
            progress["completed"].append(stage.name)
            write_json(run.state / "progress.json", progress)

        if not run.model.exists():
            with atomic_path(run.model) as tmp:
                model.save(tmp)
        if not dist.is_chief:
            # the chief validates and writes the run folder; this worker's copy goes away
            print(
                f"{dist.task_type} {dist.task_id}: training done; the chief writes the run "
                f"folder {Path(config['out']) / str(config.get('name') or '')}"
            )
            return RunResult(run, {}, config, time.time() - started, chief=False)
        if refit:
            metrics = {"split": "none (refit)", "num_examples": 0, "train_examples": len(training)}
            write_json(run.metrics, metrics)
        else:
            best_model = load_model(run.model, compile=False)
            metrics = task.validate(
                best_model, data.val, config, run.dir, split="val", progress=verbose > 0
            )
        if run.history.exists():
            from visionkit.evaluate.plots import plot_history

            plot_history(
                run.history, run.path("curves.png"), title=f"{run.name}: {config['model']}"
            )
    except BaseException:
        if dist.is_chief and not resume and not run.config.exists():
            shutil.rmtree(run.dir, ignore_errors=True)  # nothing worth keeping; frees the name
        raise
    finally:
        keras.mixed_precision.set_global_policy("float32")
        dist.cleanup()
    result = RunResult(run, metrics, config, time.time() - started)
    if config.get("test"):
        result.test_metrics = task.test(config, run)
    print(result.summary())
    return result


def load_run_model(path: str | Path):
    """A trained model and its run config from a run folder or a ``.keras`` file, or an
    exported model (SavedModel folder, ``.tflite``, ``.onnx``) as an
    :class:`~visionkit.predict.ExportedModel` with the config of the run it came from."""
    from visionkit.predict import ExportedModel, exported_run_config, is_exported

    path = Path(path)
    if is_exported(path):
        return ExportedModel(path), exported_run_config(path)
    if path.is_dir():
        run = Run(path)
        if not run.model.exists():
            raise FileNotFoundError(f"{path} is not a finished run: it has no model.keras")
        return load_model(run.model, compile=False), run.read_config()
    if path.suffix == ".keras":
        config_path = path.with_name("config.yaml")
        config = Run(path.parent).read_config() if config_path.exists() else {}
        return load_model(path, compile=False), config
    raise FileNotFoundError(
        f"model={path}: expected a run folder, a .keras file, or an export "
        "(SavedModel folder, .tflite, .onnx)"
    )
