"""Deployment files of a trained child: the bit-packed file that reloads with identical
predictions (``export``), and TensorFlow Lite, float or full-integer int8, with its check against
Keras in the TensorFlow Lite interpreter (``tflite_export``)."""
