"""Datasets: the record every loader returns and the shared download and split code
(``data_common``), MNIST and the ``tf.data`` input pipeline (``data_utils``), CIFAR-10 in the
official python pickles (``data_utils_cifar``). Every loader reads local files first and turns
missing or corrupt data into one-line errors."""
