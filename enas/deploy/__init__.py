"""Deployment files of a trained child: the bit-packed file that reloads with identical
predictions (``export``); TensorFlow Lite, float or full-integer int8, with its check against
Keras in the TensorFlow Lite interpreter (``tflite_export``); the repairs that make the int8 file
integer end to end and loadable by TensorFlow Lite Micro (``int8_graph``); the arena TFLM plans for
it and a better operator order (``tflm_memory``); the run in TFLM's own interpreter with its
smallest arena (``tflm_check``, which runs it in a child process: ``tflm_worker``); TFLM's LUT
compression of the weights (``tflm_compress``); and the per-op RAM and flash tables of the
search's reward (``micro_table``)."""
