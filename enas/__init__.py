"""ENAS micro search and training over quantized child networks.

Importing ``enas`` before TensorFlow (as the scripts do) sets two of TensorFlow's environment
defaults, each only when the user has not set it:

* ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ start-up chatter stays out of the logs users
  redirect (the scripts also filter the banners that ignore it, see :mod:`enas.tf_log`); set it
  to 0 to see everything.
* ``TF_ENABLE_ONEDNN_OPTS=1``: oneDNN's CPU kernels, which TensorFlow enables by default only on
  some CPUs. On a 2-core AMD EPYC they made the ENAS-size fixed training step 1.9x faster
  (69 vs 36 images/s); set it to 0 for TensorFlow's own (Eigen) kernels.
"""

import os

# What the user's environment said, before the default below (see enas.tf_log).
USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
