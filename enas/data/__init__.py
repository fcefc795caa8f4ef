"""Datasets: the records every loader returns with the checks of raw arrays, the validation split
and the training statistics (``data_common``); MNIST and the ``tf.data`` input pipeline
(``data_utils``); CIFAR-10 in the official python pickles (``data_utils_cifar``); folders of
images with one sub-folder per class, streamed from disk (``image_folder``); which kind of data a
path holds (``formats``); and every source behind one call, ``.npz`` files and arrays or
``tf.data`` from Python included (``sources``). Every loader reads local files first and turns
missing or corrupt data into one-line errors; images stay raw (the network normalises them)."""
