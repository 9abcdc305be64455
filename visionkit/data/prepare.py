"""Training data as a run sees it: load the splits, run the doctor on each, skip faulty
examples (or stop at the first with ``strict``), and note which files need PIL decoding."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from visionkit.data.doctor import check_dataset
from visionkit.data.loader import load_dataset, load_splits
from visionkit.data.types import Dataset, Fault

# Handled conversions tf.io cannot do exactly (EXIF orientation, CMYK, 16 bits, palettes
# with transparency, alpha): these files are decoded with PIL inside the pipeline.
PIL_KINDS = frozenset(("exif_rotated", "cmyk", "sixteen_bit", "palette", "alpha"))


@dataclass
class PreparedData:
    """Checked train and validation datasets with what was skipped and how to decode."""

    train: Dataset
    val: Dataset
    faults: list[Fault] = field(default_factory=list)
    needs_pil: set[str] = field(default_factory=set)
    skipped: int = 0

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names

    def refit_training(self) -> Dataset:
        """The training and validation examples as one training set, for a final fit on all
        the data once the recipe and epoch count were chosen on the validation split."""
        if self.val.mask_value_map != self.train.mask_value_map:
            from visionkit.data.errors import DataError

            raise DataError(
                "refit=true: the validation data stores its mask values differently from the "
                f"training data ({self.val.mask_value_map} vs {self.train.mask_value_map}); "
                "refit needs one mask format, or train without refit"
            )
        return replace(
            self.train, examples=[*self.train.examples, *self.val.examples], split="train+val"
        )

    def summary(self) -> str:
        line = f"data: {len(self.train)} training and {len(self.val)} validation examples, {len(self.class_names)} classes"
        if self.skipped:
            kinds = sorted({f.kind for f in self.faults if f.fatal})
            line += (
                f"; skipped {self.skipped} faulty ({', '.join(kinds)}), listed in data_faults.csv"
            )
        return line


def cache_location(cache: bool | str | None, dataset: Dataset, split: str) -> bool | str:
    """Where a pipeline caches decoded images: ``True`` in memory, ``False`` nowhere, or a
    file under the folder ``cache`` named by the split and a fingerprint of the files (path,
    size, modification time), so runs and splits never read each other's cache and edited
    data is never served from a stale one."""
    if not cache:
        return False
    if cache is True:
        return True
    import hashlib
    import os

    digest = hashlib.sha1()
    for example in dataset.examples:
        for path in (example.image_path, example.mask_path):
            if path:
                stat = os.stat(path)
                digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        if example.image is not None:
            digest.update(example.image.tobytes())
        if example.record is not None:
            ref, stat = example.record, os.stat(example.record.path)
            digest.update(
                f"{ref.path}|{ref.offset}|{ref.length}|{stat.st_size}|{stat.st_mtime_ns}\n".encode()
            )
    folder = os.fspath(cache)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{split}-{digest.hexdigest()[:16]}")


def checked(
    dataset: Dataset, *, strict: bool, progress: bool
) -> tuple[Dataset, list[Fault], set[str], int]:
    """Run the doctor on ``dataset``; return the usable part, all faults, PIL paths, skips."""
    report = check_dataset(dataset, strict=strict, progress=progress, hash_duplicates=False)
    usable = report.usable_dataset()
    pil = {f.file for f in report.faults if f.kind in PIL_KINDS}
    return usable, list(report.faults), pil, len(dataset) - len(usable)


def prepare_data(config: dict[str, Any], *, task: str, progress: bool = True) -> PreparedData:
    """Load ``config["data"]`` (and ``config["val"]``) for ``task`` and check both.

    Without ``val`` the data's own validation split is used, or a seeded, stratified one
    of ``val_fraction`` is carved from the training data. With ``split`` (and no ``val``)
    only that split is read and the validation split is carved from it, so the data's
    other splits stay unseen (e.g. ``split=train`` keeps a ``val`` split held out for
    testing). Class names of the validation data must equal the training data's.
    """
    options = {"data_dir": config["data_dir"]} if config.get("data_dir") else {}
    fmt, strict = config.get("format"), bool(config.get("strict"))
    if config.get("val"):
        train = load_dataset(config["data"], fmt, task, config.get("split"), **options)
        val = load_dataset(config["val"], fmt, task, None, **options)
    elif config.get("split"):
        from visionkit.data.split import stratified_split

        train, val = stratified_split(
            load_dataset(config["data"], fmt, task, config["split"], **options),
            float(config["val_fraction"]),
            int(config["seed"]),
        )
    else:
        splits = load_splits(
            config["data"],
            fmt,
            task,
            val_fraction=float(config["val_fraction"]),
            seed=int(config["seed"]),
            **options,
        )
        train, val = splits["train"], splits["val"]
    if val.class_names != train.class_names:
        from visionkit.data.errors import DataError

        raise DataError(
            f"validation classes {val.class_names} differ from training classes {train.class_names}; "
            "give both the same class folders / names"
        )
    if task == "classify" and len(train.class_names) < 2:
        from visionkit.data.errors import DataError

        raise DataError(
            f"{config['data']}: classification needs at least 2 classes, found {train.class_names}; "
            "put each class in its own subfolder"
        )
    train, faults, pil, skipped = checked(train, strict=strict, progress=progress)
    val, val_faults, val_pil, val_skipped = checked(val, strict=strict, progress=progress)
    return PreparedData(train, val, faults + val_faults, pil | val_pil, skipped + val_skipped)
