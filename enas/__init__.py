"""ENAS micro search and training over quantized child networks.

Importing ``enas`` first (as the scripts do) keeps TensorFlow's C++ start-up chatter (CPU
instruction and oneDNN notices) out of the logs users redirect; set ``TF_CPP_MIN_LOG_LEVEL=0``
to see it again.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
