"""TensorFlow Lite export of a trained child (float, or full-integer int8) and its check.

The route is Keras 3's own: :func:`deployable` makes an inference copy whose quantized kernels
hold their quantized values ``q(W)`` (the kernel quantizers removed, so the file stores the
levels, not the latent weights; activations keep their quantizers), ``keras.export.ExportArchive``
writes it as a SavedModel with one ``serve`` endpoint (``images (batch, H, W, C) float32 ->
logits (batch, classes)``, inference mode; every activation quantizer's input clipped to its
saturation range and the quantizer traced in its export form, :func:`quantize.base.saturated_inputs`,
which changes no output), and
``tf.lite.TFLiteConverter.from_saved_model`` converts that, folding batch norms where TensorFlow Lite does. Only TensorFlow Lite's builtin
operators are allowed (no Flex ops): a layer that needs anything else is a one-line
:class:`TFLiteExportError` naming the layer.

The file's input is what the network takes: raw values (0-255 pixels for image data), the
normalisation being the network's first layer. ``int8=True``: full-integer post-training
quantization (every operator int8, calibrated on ``representative`` raw images of the run's
training split); the input and output are float32, int8 or uint8 (``io``). For uint8 pixel data
the calibration also sees an all-0 and an all-255 image, which pins the input's quantization to
scale 1: a ``uint8`` input is the raw pixel bytes (zero point 0) and an ``int8`` input is the
pixel minus 128 (zero point -128); :func:`convert` checks it. Weights are quantized per output channel with the scale ``max |w_c| / 127``, so the
levels of binary (``{-1, +1}``, or ``+-alpha_c``) and ternary (``{-a, 0, +a}``) kernels land on
int8 exactly (``+-127`` and 0; :func:`int8_weight_levels`); k-bit levels ``j / 2^(k-1)`` land on
the nearest of 127 steps of their channel's largest level ``j_max``, exact only where ``j_max``
divides ``127 j`` (otherwise off by at most half a step, 0.4% of the channel's largest weight).
The int8 file is then repaired to be integer end to end (:func:`enas.deploy.int8_graph.integer_only`),
its operators put in the order that needs the least tensor arena
(:func:`enas.deploy.tflm_memory.better_order`) and its inner tensors' names dropped
(:func:`enas.deploy.int8_graph.strip_names`: flash).

:func:`check` runs the interpreter on a split and reports Keras' and the file's accuracy, how
often their predictions agree, the file size and the median latency per image on this CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import statistics
import sys
import tempfile
import time

import numpy as np

from enas.errors import UserError
from enas.run.atomic import atomic_write
from quantize.base import Int8ExportError, int8_grid_inputs, saturated_inputs

IO_TYPES = ("float", "int8", "uint8")


class TFLiteExportError(UserError):
    """The model cannot be converted (one line, exit status 2)."""


def deployable(model):
    """An inference copy of ``model`` (a built Keras model, e.g. a fixed
    :class:`~enas.child.micro_child.MicroChild`): the same architecture and weights, every quantized
    kernel replaced by its quantized value and its kernel quantizer removed, and the input
    normalisation folded into one multiply-add. Predictions are unchanged (``q(q(W)) = q(W)`` is
    never computed: the copy just reads ``q(W)``; the folded normalisation differs by float
    rounding only)."""
    import keras

    from enas.child.common_ops import InputNormalization

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in copy._flatten_layers(include_self=False):
        if isinstance(layer, InputNormalization):  # one multiply-add: MUL + ADD, integer-friendly
            layer.folded = True
    for layer in copy._flatten_layers(include_self=False):
        quantizer = getattr(layer, "kernel_quantizer", None)
        if quantizer is None:
            continue
        kernels = getattr(layer, "quantized_kernels", None)
        if kernels is None:  # a layer with one `kernel` and a kernel_quantizer (the cells' combine)
            kernels = {"kernel": quantizer(layer.kernel)}
        for attribute, value in kernels.items():
            getattr(layer, attribute).assign(value)
        layer.kernel_quantizer = None
    return copy


def write_saved_model(model, folder, int8=False):
    """``model``'s inference function as a SavedModel in ``folder``: endpoint ``serve``, images
    ``(batch, H, W, C)`` float32 -> logits, inference mode, quantizer inputs saturated (and with
    ``int8`` every quantizer in its integer form, :func:`quantize.base.int8_grid_inputs`)."""
    import keras
    import tensorflow as tf

    shape = getattr(model, "input_image_shape", None) or tuple(model.input_shape[1:])
    archive = keras.export.ExportArchive()
    archive.track(model)
    def serve(images):
        with saturated_inputs(), (int8_grid_inputs() if int8 else contextlib.nullcontext()):
            return model(images, training=False)

    try:
        archive.add_endpoint(name="serve", fn=serve,
                             input_signature=[tf.TensorSpec((None,) + tuple(shape), tf.float32)])
        archive.write_out(folder, verbose=False)
    except Int8ExportError as e:  # Keras wraps it: keep the quantizer's own line, without colour codes
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(e).splitlines()]
        reason = next((line for line in lines if "no integer (int8) form" in line), lines[0] if lines else "")
        raise TFLiteExportError(f"no full-integer export: {reason}; export a float file (drop --int8)") from None


def convert(model, int8=False, representative=None, io="float", pixels=None):
    """The ``.tflite`` bytes of ``model`` (see the module docstring): float, or with ``int8``
    full-integer int8 calibrated on ``representative`` (float32 images ``(N, H, W, C)``), input
    and output ``io`` (``"float"``, ``"int8"`` or ``"uint8"``); ``pixels="uint8"`` (raw image bytes)
    pins the input scale to 1 (see the module docstring). Raises :class:`TFLiteExportError` naming the
    layer TensorFlow Lite cannot convert."""
    import tensorflow as tf

    if io not in IO_TYPES:
        raise TFLiteExportError(f"unknown --tflite_io {io!r}: use one of {', '.join(IO_TYPES)}")
    if int8 and (representative is None or len(representative) == 0):
        raise TFLiteExportError("int8 export needs representative images (the run's training split)")
    with tempfile.TemporaryDirectory(prefix="qenas-tflite-") as folder:
        write_saved_model(model, folder, int8=int8)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=["serve"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if io != "float" and not int8:
            raise TFLiteExportError(f"--tflite_io {io} needs --int8 (a float file has float input and output)")
        if int8:
            images = np.asarray(representative, np.float32)
            if pixels == "uint8":  # the full byte range: input scale 1, zero point -128 (int8) / 0 (uint8)
                images = np.concatenate([images, np.zeros_like(images[:1]), np.full_like(images[:1], 255.0)])
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None]] for image in images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io_type = {"int8": tf.int8, "uint8": tf.uint8}.get(io, tf.float32)
            converter.inference_input_type = converter.inference_output_type = io_type
        try:
            with _converter_diagnostics_off():
                blob = converter.convert()
        except Exception as e:  # noqa: BLE001 - the converter raises several kinds; all mean the same here
            raise TFLiteExportError(describe_failure(str(e))) from None
    if int8:
        from enas.deploy import tflm_memory
        from enas.deploy.int8_graph import integer_only, strip_names

        blob, _ = integer_only(blob)
        order = tflm_memory.better_order(blob)
        if order != sorted(order):  # the operator order TFLM needs the least arena for
            blob = tflm_memory.reordered(blob, order)
        blob = strip_names(blob)
    if int8 and io != "float" and pixels == "uint8":
        scale, zero = input_quantization(blob)
        if abs(scale - 1.0) > 1e-6 or zero != (0 if io == "uint8" else -128):
            raise AssertionError(f"the {io} input is not the raw pixels: scale {scale}, zero point {zero}")
    return blob


def input_quantization(blob):
    """``(scale, zero_point)`` of the file's input (``(0.0, 0)`` for a float input)."""
    detail = interpreter(blob).get_input_details()[0]
    scale, zero = detail["quantization"]
    return float(scale), int(zero)


@contextlib.contextmanager
def _converter_diagnostics_off():
    """The converter prints its MLIR diagnostics straight to file descriptor 2; the exception
    carries the same text, which :func:`describe_failure` turns into one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def describe_failure(message):
    """One line from a converter error: the layer (the name scope of the first operator it
    rejects) and the TensorFlow operator."""
    op = re.search(r"'tf\.(\w+)' op", message)
    where = re.search(r'fused\["(\w+):", "([^"@]+)', message) or re.search(r'loc\("([^"@]+)', message)
    layer = None
    if where is not None:
        path = where.group(where.lastindex)
        parts = [p for p in path.split("/") if p]
        layer = parts[-2] if len(parts) >= 2 else parts[0]
        layer = re.sub(r"_\d+$", "", layer)  # Keras' uniquifying suffix of a re-traced name
    op_name = op.group(1) if op else (where.group(1) if where is not None and where.lastindex == 2 else None)
    if layer is None and op_name is None:
        first = next((line.strip() for line in message.splitlines() if "error" in line.lower()), message.strip())
        return f"TensorFlow Lite cannot convert the model: {first[:200]}"
    what = f"layer {layer!r}" if layer else "a layer"
    return (f"TensorFlow Lite cannot convert {what}: its TensorFlow operator {op_name or '?'} has no TensorFlow Lite "
            "builtin; replace the layer, or keep the model in Keras")


@dataclasses.dataclass
class Check:
    """What :func:`check` measured."""

    examples: int
    keras_accuracy: float
    tflite_accuracy: float
    agreement: float  # fraction of examples where the file predicts Keras' class
    file_bytes: int
    median_ms: float  # per image, batch 1, this CPU

    def lines(self, name="TFLite"):
        return [
            f"{name}: {self.file_bytes:,} bytes",
            f"{name}: test accuracy {self.tflite_accuracy:.4f} (Keras {self.keras_accuracy:.4f}), same prediction "
            f"as Keras on {self.agreement:.2%} of {self.examples:,} images",
            f"{name}: median latency {self.median_ms:.3f} ms per image (batch 1, interpreter, this CPU)",
        ]


def interpreter(blob, threads=None):
    """TensorFlow's own TensorFlow Lite interpreter on the ``.tflite`` bytes, allocated. (It
    warns that LiteRT's ``ai_edge_litert`` package will replace it; it is the same runtime, and
    one package fewer to install, so the warning is silenced.)"""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
        runner = tf.lite.Interpreter(model_content=blob, num_threads=threads)
    runner.allocate_tensors()
    return runner


def predict(blob, images, threads=None):
    """``(predicted classes [N], seconds per image [N])`` of the ``.tflite`` bytes on raw ``images``
    ``(N, H, W, C)`` (the values the network takes), one image per invocation (an int8 or uint8
    input quantized with the file's scale and zero point: for pixel data exported with
    ``pixels="uint8"``, the bytes themselves, or minus 128)."""
    runner = interpreter(blob, threads)
    source, target = runner.get_input_details()[0], runner.get_output_details()[0]
    classes, seconds = [], []
    for image in np.asarray(images, np.float32):
        value = image[None]
        if source["dtype"] in (np.int8, np.uint8):
            scale, zero = source["quantization"]
            info = np.iinfo(source["dtype"])
            value = np.clip(np.round(value / scale + zero), info.min, info.max).astype(source["dtype"])
        runner.set_tensor(source["index"], value)
        start = time.perf_counter()
        runner.invoke()
        seconds.append(time.perf_counter() - start)
        classes.append(int(np.argmax(runner.get_tensor(target["index"])[0])))
    return np.array(classes), np.array(seconds)


def keras_classes(model, images, batch=500):
    return np.concatenate([np.argmax(model(images[i:i + batch], training=False), axis=-1)
                           for i in range(0, len(images), batch)])


def check(blob, model, images, labels, threads=None):
    """:class:`Check` of the ``.tflite`` bytes against ``model`` on ``images`` / ``labels``."""
    labels = np.asarray(labels).reshape(-1)
    reference = keras_classes(model, images)
    classes, seconds = predict(blob, images, threads)
    return Check(examples=len(labels), keras_accuracy=float(np.mean(reference == labels)),
                 tflite_accuracy=float(np.mean(classes == labels)), agreement=float(np.mean(classes == reference)),
                 file_bytes=len(blob), median_ms=1000 * statistics.median(seconds.tolist()))


def int8_weight_levels(blob):
    """``{tensor index: (operator, sorted distinct int8 values)}`` of the weight tensors (input 1)
    of the file's convolutions and fully connected layers that are quantized per channel, in the
    order the operators run (the stem's convolution first): a binary or ternary child's cells give
    ``{-127, 127}`` or ``{-127, 0, 127}``, their levels exactly. (Indices, not names: the int8
    file keeps no inner tensor names.)"""
    from enas.deploy import int8_graph

    model = int8_graph.read(blob)
    graph = model.subgraphs[0]
    int8 = int8_graph._schema().TensorType.INT8
    levels = {}
    for op in graph.operators:
        name = int8_graph.operator_name(model, op)
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(op.inputs) < 2:
            continue
        index = int(op.inputs[1])
        tensor = graph.tensors[index]
        scales = tensor.quantization.scale if tensor.quantization is not None else None
        values = int8_graph._buffer_array(model, tensor, np.int8)
        if tensor.type != int8 or values is None or scales is None or len(scales) < 2 or index in levels:
            continue
        levels[index] = (name, sorted(int(v) for v in np.unique(values)))
    return levels


def write(path, blob):
    """Write ``blob`` to ``path`` atomically."""
    atomic_write(path, blob)
