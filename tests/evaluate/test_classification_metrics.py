"""Classification metrics against scikit-learn on random predictions, and the plots."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visionkit.evaluate.classification import (
    classification_metrics,
    confusion_matrix,
    format_classification_report,
    top_k_accuracy,
)


@pytest.mark.parametrize("num_classes", [2, 5, 11])
def test_matches_scikit_learn(num_classes):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(num_classes)
    y = rng.integers(0, num_classes, 300)
    logits = rng.normal(size=(300, num_classes)) + 2.0 * np.eye(num_classes)[y] * rng.random(
        (300, 1)
    )
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = [f"c{i}" for i in range(num_classes)]
    m = classification_metrics(y, probs, names, split="test")
    pred = probs.argmax(axis=1)
    assert m["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, pred), abs=1e-12)
    p, r, f, s = sklearn_metrics.precision_recall_fscore_support(
        y, pred, labels=range(num_classes), zero_division=0
    )
    for i, name in enumerate(names):
        row = m["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i]), abs=1e-12
        )
    assert (
        m["confusion_matrix"]
        == sklearn_metrics.confusion_matrix(y, pred, labels=range(num_classes)).tolist()
    )
    if num_classes >= 5:
        expected = sklearn_metrics.top_k_accuracy_score(y, probs, k=5, labels=range(num_classes))
        assert m["top5_accuracy"] == pytest.approx(expected, abs=1e-12)
    else:
        assert "top5_accuracy" not in m
    assert m["num_examples"] == 300 and m["split"] == "test"
    assert "accuracy" in format_classification_report(m)


def test_small_exact_case():
    y = np.array([0, 0, 1, 2, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 2, 2, 0]]
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["b"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
    }
    assert confusion_matrix(y, probs.argmax(1), 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    # Top-k with ties is deterministic (stable order): C44, the ILSVRC top-5 rule.
    assert top_k_accuracy(np.array([4]), np.full((1, 6), 1 / 6), 5) == 1.0
    assert top_k_accuracy(np.array([5]), np.full((1, 6), 1 / 6), 5) == 0.0


def test_input_checks():
    with pytest.raises(ValueError, match=r"must be \(N, 3\)"):
        classification_metrics([0], np.ones((1, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        classification_metrics([0, 1], np.ones((1, 3)) / 3, ["a", "b", "c"])


def test_plots_are_written(tmp_path):
    import pandas as pd

    from visionkit.evaluate.plots import plot_confusion_matrix, plot_history, plot_image_grid

    history = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "stage": ["head", "head", "finetune"],
            "loss": [1.0, 0.5, 0.3],
            "val_loss": [1.1, 0.7, 0.4],
        }
    )
    for path in (
        plot_history(history, tmp_path / "curves.png"),
        plot_confusion_matrix([[3, 1], [0, 4]], ["x", "y"], tmp_path / "cm.png"),
        plot_image_grid(
            [np.zeros((8, 8, 3), np.uint8)] * 3, ["a", "b", "c"], tmp_path / "grid.png"
        ),
    ):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 100
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_history_plot_joins_the_validated_epochs(tmp_path, monkeypatch):
    """With val_every > 1 the val columns have gaps; the val curve is drawn through the
    validated epochs instead of as isolated markers."""
    import pandas as pd

    from visionkit.evaluate import plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    nan = float("nan")
    history = pd.DataFrame(
        {"epoch": [0, 1, 2, 3, 4], "loss": [5, 4, 3, 2, 1], "val_loss": [nan, 4.5, nan, 2.5, 2.0]}
    )
    plots.plot_history(history, tmp_path / "curves.png")
    train_line, val_line = figures[0].axes[0].lines[:2]
    assert list(train_line.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(val_line.get_xdata()) == [2, 4, 5]
    assert list(val_line.get_ydata()) == [4.5, 2.5, 2.0]
