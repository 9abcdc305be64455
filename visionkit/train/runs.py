"""Run folders: ``out/name/`` with the resolved config, history, metrics, the best model,
plots, TensorBoard logs, the resume state and (later) exports.

Layout (design card): ``config.yaml``, ``history.csv``, ``metrics.json``, ``model.keras``,
``*.png`` plots, ``labels.txt``, ``data_faults.csv`` (skipped files), ``logs/``
(TensorBoard), ``state/`` (resume), ``export/``.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from visionkit.config import ConfigError
from visionkit.io import atomic_path, write_text, write_yaml


@dataclass(frozen=True)
class Run:
    """Paths of one run folder."""

    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    def path(self, name: str) -> Path:
        return self.dir / name

    config = property(lambda self: self.dir / "config.yaml")
    history = property(lambda self: self.dir / "history.csv")
    metrics = property(lambda self: self.dir / "metrics.json")
    model = property(lambda self: self.dir / "model.keras")
    labels = property(lambda self: self.dir / "labels.txt")
    faults = property(lambda self: self.dir / "data_faults.csv")
    logs = property(lambda self: self.dir / "logs")
    state = property(lambda self: self.dir / "state")
    export = property(lambda self: self.dir / "export")

    def read_config(self) -> dict[str, Any]:
        """The run's ``config.yaml`` (safe YAML); a damaged one is a ConfigError naming it."""
        from visionkit.config import ConfigError

        try:
            with open(self.config, encoding="utf-8") as handle:
                config = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise ConfigError(
                f"{self.config}: not a readable run config ({str(err).splitlines()[0]}); "
                "restore it or train again"
            ) from None
        if not isinstance(config, dict):
            raise ConfigError(f"{self.config}: a run config is a mapping of keys")
        return config


def next_free(parent: Path, base: str) -> Path:
    """``parent/base``, or ``base2``, ``base3``, ... : the first that does not exist."""
    if not (parent / base).exists():
        return parent / base
    k = 2
    while (parent / f"{base}{k}").exists():
        k += 1
    return parent / f"{base}{k}"


def check_name(name: str) -> str:
    """A run or output name is one folder name: no separators, no ``..``, not absolute."""
    name = str(name)
    if not name or name in (".", "..") or "/" in name or "\\" in name or Path(name).is_absolute():
        raise ConfigError(
            f"name={name!r} must be a single folder name (no '/', '..' or absolute paths); use out= for the parent folder"
        )
    return name


def open_run(out: str, name: str | None, *, exist_ok: bool = False, resume: bool = False) -> Run:
    """Create (or, with ``resume``, find) the run folder ``out/name``.

    ``name=None`` picks ``exp``, ``exp2``, ... An existing folder is an error unless
    ``exist_ok`` (files are replaced) or ``resume`` (training continues from its state).
    """
    parent = Path(out)
    if name is not None:
        name = check_name(name)
    if resume:
        if not name:
            raise ConfigError(
                "resume=true needs name= (the run folder to continue), e.g. name=exp3"
            )
        folder = parent / name
        if not (folder / "config.yaml").exists():
            raise ConfigError(
                f"cannot resume {folder}: it has no config.yaml. Check out= and name= "
                f"(existing runs: {', '.join(sorted(p.name for p in parent.glob('*/config.yaml'))) or 'none'})"
            )
        return Run(folder)
    folder = next_free(parent, "exp") if not name else parent / name
    if folder.exists() and any(folder.iterdir()):
        if not exist_ok:
            raise ConfigError(
                f"run folder {folder} already exists; pass exist_ok=true to replace it, "
                f"resume=true to continue it, or another name="
            )
        if not (folder / "config.yaml").exists():
            raise ConfigError(
                f"{folder} is not empty and is not a visionkit run folder (no config.yaml); "
                "refusing to replace it: choose another name= or out="
            )
        shutil.rmtree(folder)  # a fresh run: no stale history, checkpoints or resume state
    folder.mkdir(parents=True, exist_ok=True)
    return Run(folder)


def open_output(out: str, name: str | None, default: str) -> Path:
    """A folder for val/predict results: ``out/name``, or the first free ``out/default``,
    ``default2``, ... when ``name`` is None. An existing named folder is reused."""
    folder = Path(out) / check_name(name) if name else next_free(Path(out), default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_run_config(run: Run, config: dict[str, Any]) -> None:
    """Write the fully resolved configuration and the label file."""
    write_yaml(run.config, config)
    if config.get("class_names"):
        write_text(run.labels, "\n".join(config["class_names"]) + "\n")


def save_faults(run: Run, faults) -> None:
    """List the faulty files a run skipped (file, kind, detail, where)."""
    with atomic_path(run.faults) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "kind", "detail", "where", "fatal"])
        for f in faults:
            writer.writerow([f.file, f.kind, f.detail, f.where or "", f.fatal])
