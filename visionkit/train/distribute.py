"""Where training runs: one device, several local GPUs, several machines, or a TPU.

``resolve_distribution(config)`` turns the ``strategy`` key into a ``tf.distribute``
strategy and what the trainer needs to know about it:

=============  ==================================================================
strategy       meaning
=============  ==================================================================
auto           a TPU when one is found (never probes the network: only a ``tpu=``
               name, ``$TPU_NAME``/``$COLAB_TPU_ADDR`` or local TPU devices count),
               else ``multiworker`` when ``$TF_CONFIG`` is set, else ``mirrored``
               over two or more GPUs, else TensorFlow's default (one device)
one_device     ``OneDeviceStrategy`` on the first GPU (or the CPU)
mirrored       ``MirroredStrategy``: synchronous data parallelism over the local GPUs
               (over the logical CPUs when there is no GPU; tests use two)
multiworker    ``MultiWorkerMirroredStrategy`` across the machines of ``$TF_CONFIG``
               (each machine runs the same command; worker 0, or the ``chief``, writes)
tpu            ``TPUStrategy`` on the TPU of ``tpu=`` / ``$TPU_NAME`` / the local TPU VM
=============  ==================================================================

Batch and learning rate (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): ``batch`` is
per replica, so the global batch is ``batch × replicas``; with ``scale_lr=true`` the peak
learning rates are multiplied by the number of replicas (the linear scaling rule; the
warmup of every stage is what makes it work at large batches).

Writes (the TensorFlow multi-worker pattern): only the chief writes the run folder. Other
workers run every callback as the chief does (saving can involve collective ops, and
identical logs keep early stopping in step), but into a worker-local temporary run folder
that is deleted when training ends.

Multi-worker and TPU set up the TensorFlow runtime: resolve the strategy before any other
TensorFlow op runs in the process (the trainer does it first). Logical CPU devices (for
``mirrored`` without GPUs) must likewise be configured before TensorFlow initialises.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionkit.config import ConfigError

STRATEGIES = ("auto", "one_device", "mirrored", "multiworker", "tpu")

# A strategy may be created once per process (multi-worker collectives and the TPU system
# are initialised once): later runs in the same process reuse it.
_CACHE: dict[tuple[str, str | None], Distribution] = {}


@dataclass
class Distribution:
    """A resolved strategy: the ``tf.distribute.Strategy``, how many replicas it trains on,
    and which worker this process is."""

    strategy: Any
    kind: str  # "default" | "one_device" | "mirrored" | "multiworker" | "tpu"
    devices: tuple[str, ...] = ()
    workers: int = 1
    task_type: str | None = None
    task_id: int = 0
    _temp_dirs: list[str] = field(default_factory=list, repr=False)

    @property
    def replicas(self) -> int:
        """Replicas trained in sync (over all workers)."""
        return int(self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        """True for the one process that writes the run folder, the model and the exports."""
        return is_chief(self.task_type, self.task_id)

    @property
    def distributed(self) -> bool:
        """True when the model's variables are mirrored over several replicas or workers."""
        return self.kind in ("mirrored", "multiworker", "tpu") and (
            self.replicas > 1 or self.workers > 1
        )

    def scope(self) -> AbstractContextManager:
        """Build and compile models inside this scope."""
        return self.strategy.scope()

    def global_batch(self, batch: int) -> int:
        """The batch of one training step over all replicas (``batch`` is per replica)."""
        return int(batch) * self.replicas

    def scaled_lr(self, lr: float, enabled: bool = True) -> float:
        """``lr × replicas`` (linear scaling rule) when ``enabled``, else ``lr``."""
        return float(lr) * (self.replicas if enabled else 1)

    def worker_dir(self) -> Path:
        """A fresh worker-local temporary folder for a non-chief worker's writes (removed by
        :meth:`cleanup`)."""
        path = tempfile.mkdtemp(prefix=f"visionkit-{self.task_type or 'worker'}{self.task_id}-")
        self._temp_dirs.append(path)
        return Path(path)

    def cleanup(self) -> None:
        """Delete the temporary folders of this worker."""
        while self._temp_dirs:
            shutil.rmtree(self._temp_dirs.pop(), ignore_errors=True)

    def describe(self) -> str:
        """One line for the log: strategy, replicas, workers, this worker's role."""
        where = f" on {', '.join(self.devices)}" if self.devices else ""
        text = f"strategy {self.kind}: {self.replicas} replica{'s' * (self.replicas != 1)}{where}"
        if self.workers > 1:
            role = "chief" if self.is_chief else "not the chief: writes go to a temporary folder"
            text += f", {self.workers} workers, this is {self.task_type} {self.task_id} ({role})"
        return text


def is_chief(task_type: str | None, task_id: int) -> bool:
    """The chief of a TF_CONFIG cluster: task ``chief``, or ``worker`` 0 when the cluster has
    no chief, or a process outside any cluster."""
    if task_type in (None, "chief"):
        return True
    if task_type == "worker" and int(task_id) == 0:
        cluster = tf_config().get("cluster", {})
        return "chief" not in cluster
    return False


def tf_config() -> dict[str, Any]:
    """``$TF_CONFIG`` parsed (``{}`` when unset); malformed JSON is a ConfigError."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({err.msg} at column {err.colno}); see docs/scaling.md "
            'for an example: {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        ) from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict):
        raise ConfigError(
            'TF_CONFIG needs a "cluster" mapping of job names to host:port lists and a "task" '
            '({"type": "worker", "index": N}); see docs/scaling.md'
        )
    return value


def _cluster_size(config: dict[str, Any]) -> int:
    return sum(len(v) for k, v in config.get("cluster", {}).items() if k in ("chief", "worker"))


def tpu_hint(name: str | None = None) -> bool:
    """True when something local says a TPU is here: a ``tpu=`` name, ``$TPU_NAME``,
    ``$COLAB_TPU_ADDR``, or TPU devices (``/dev/accel*``, TPU VMs). Reads no network, so
    ``strategy=auto`` never waits on a cloud metadata server."""
    if name or os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return True
    return any(Path("/dev").glob("accel[0-9]*"))


def _tpu_strategy(name: str | None):
    import tensorflow as tf

    target = name or os.environ.get("TPU_NAME") or ("local" if tpu_hint() else None)
    if target is None:
        raise ConfigError(
            "strategy=tpu: no TPU found (no tpu= name, no $TPU_NAME or $COLAB_TPU_ADDR, no "
            "/dev/accel* devices); use strategy=auto to train on what this machine has"
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
        if target != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise ConfigError(
            f"strategy=tpu: could not connect to the TPU {target!r} ({str(err).splitlines()[0]}); "
            "check tpu= (name or grpc://host:port) and that this VM can reach it"
        ) from None
    devices = tuple(d.name for d in tf.config.list_logical_devices("TPU"))
    return tf.distribute.TPUStrategy(resolver), devices


def _make(kind: str, tpu: str | None) -> Distribution:
    import tensorflow as tf

    # physical devices: listing logical ones would initialise the runtime, after which the
    # multi-worker collectives can no longer be configured
    gpus = [f"/gpu:{i}" for i in range(len(tf.config.list_physical_devices("GPU")))]
    cluster = tf_config()
    if kind == "auto":
        if tpu_hint(tpu):
            kind = "tpu"
        elif cluster and _cluster_size(cluster) > 0:
            kind = "multiworker"
        elif len(gpus) > 1:
            kind = "mirrored"
        else:
            return Distribution(tf.distribute.get_strategy(), "default")
    if kind == "one_device":
        device = gpus[0] if gpus else "/cpu:0"
        return Distribution(tf.distribute.OneDeviceStrategy(device), kind, (device,))
    if kind == "mirrored":
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        return Distribution(tf.distribute.MirroredStrategy(devices), kind, tuple(devices))
    if kind == "multiworker":
        if not cluster:
            raise ConfigError(
                "strategy=multiworker needs TF_CONFIG (the cluster's host:port list and this "
                "machine's task) in the environment of every worker; docs/scaling.md has an "
                "example and the launch commands"
            )
        task = cluster.get("task", {})
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        return Distribution(
            strategy,
            kind,
            tuple(gpus),
            workers=_cluster_size(cluster),
            task_type=resolver.task_type or task.get("type"),
            task_id=int(resolver.task_id if resolver.task_id is not None else task.get("index", 0)),
        )
    if kind == "tpu":
        strategy, devices = _tpu_strategy(tpu)
        return Distribution(strategy, kind, devices)
    raise ConfigError(f"strategy={kind}: use one of {', '.join(STRATEGIES)}")


def resolve_distribution(config: dict[str, Any]) -> Distribution:
    """The strategy of ``config["strategy"]`` (and ``config["tpu"]``), created once per
    process. Call it before other TensorFlow ops when it may be multiworker or tpu."""
    kind = str(config.get("strategy") or "auto")
    if kind not in STRATEGIES:
        raise ConfigError(f"strategy={kind}: use one of {', '.join(STRATEGIES)}")
    key = (kind, config.get("tpu"))
    if key not in _CACHE:
        _CACHE[key] = _make(kind, config.get("tpu"))
    return _CACHE[key]


def prepare_model(model, dist: Distribution, element_spec) -> None:
    """Work around Keras 3's TensorFlow trainer under ``MultiWorkerMirroredStrategy``
    (keras-team/keras#20585, still open in Keras 3.15): ``fit`` first reduces a whole input
    batch with ``strategy.reduce`` (which that strategy cannot do for a nested batch), and
    then reduces every scalar metric with ``axis=0`` (invalid for a scalar).

    The model's state is built here from the dataset's ``element_spec`` instead of from a
    reduced batch, and each train/test step returns its metrics as shape-(1,) vectors, whose
    mean over the replicas is the same number. Other strategies need nothing; calling this
    again (each stage recompiles) is harmless.
    """
    if dist.kind != "multiworker" or getattr(model, "_visionkit_multiworker", False):
        return
    import tensorflow as tf

    def symbolic_build(iterator=None, data_batch=None):
        with dist.strategy.scope():
            model._symbolic_build(data_batch=element_spec)

    def as_vectors(step):
        def wrapped(data):
            return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

        return wrapped

    model._maybe_symbolic_build = symbolic_build
    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)
    model._visionkit_multiworker = True


def shard_input(dataset, dist: Distribution):
    """Tell tf.data how to split ``dataset`` over workers: by element (each worker reads its
    share of the examples; the pipeline indexes examples, it does not read files in order)."""
    if dist.workers <= 1:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    sharded = dataset.with_options(options)
    for name in ("controls",):  # keep the pipeline's attached knobs
        if hasattr(dataset, name):
            setattr(sharded, name, getattr(dataset, name))
    return sharded
