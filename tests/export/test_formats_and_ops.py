"""Format names, and the builtin-ops check that refuses Flex and custom ops."""

from __future__ import annotations

import pytest

from visionkit.export.formats import FORMATS, parse_formats
from visionkit.export.tflite import (
    UnsupportedOpsError,
    check_builtin_ops,
    convert_saved_model,
    unsupported_ops,
)


def test_parse_formats_accepts_strings_and_lists_and_drops_repeats():
    assert parse_formats("saved_model, tflite_fp32,saved_model") == ["saved_model", "tflite_fp32"]
    assert parse_formats(["tflite_int8"]) == ["tflite_int8"]


def test_unknown_format_is_named_with_the_valid_ones():
    with pytest.raises(ValueError) as err:
        parse_formats("saved_model,tflite_int4,coreml")
    message = str(err.value)
    assert "'tflite_int4'" in message and "'coreml'" in message
    assert all(name in message for name in FORMATS)
    with pytest.raises(ValueError, match="empty"):
        parse_formats("")


def test_unsupported_ops_on_an_op_list():
    ops = ["CONV_2D", "FlexConv2D", "FlexMatrixDeterminant", "TFLite_Detection_PostProcess", "MyOp"]
    assert unsupported_ops(ops) == ["FlexConv2D", "FlexMatrixDeterminant", "MyOp"]
    assert unsupported_ops(["CONV_2D", "SOFTMAX", "TFLite_Detection_PostProcess"]) == []
    assert unsupported_ops(["TFLite_Detection_PostProcess"], allowed_custom=()) == [
        "TFLite_Detection_PostProcess"
    ]


def test_a_flex_op_is_detected_and_refused(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(
        lambda images: {"det": tf.linalg.det(tf.cast(images, tf.float32)[..., :3, :3])},
        input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.uint8, name="images")],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.f})
    content = convert_saved_model(tmp_path / "sm", "fp32")
    with pytest.raises(UnsupportedOpsError, match="FlexMatrixDeterminant") as err:
        check_builtin_ops(content, "tflite_fp32 (model_fp32.tflite)")
    assert "model_fp32.tflite" in str(err.value)
