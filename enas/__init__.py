"""ENAS micro search and training over quantized child networks (TensorFlow 2 + Keras 3).

The sub-packages, from the bottom up; a module imports only from its own sub-package or from
those listed before it (``tests/test_layout.py`` checks it), and nothing imports a script:

===============  ===========================================================================
``errors``       the user errors every layer raises (one line, exit status 2)
``space``        the search space: ops, arc strings, precisions (no TensorFlow)
``config``       the typed run configuration, the child's shape, the training recipes
``data``         datasets: MNIST, CIFAR-10, the ``tf.data`` pipeline
``child``        the child network: shared layers, ops, cell, network, compiled steps
``controller``   architecture sampling: random controller, REINFORCE, the ENAS LSTM
``cost``         what a child costs: bit-accurate summary, per-op cost tables
``run``          the run loop, run folder, logs, TensorBoard, tf.distribute, fixed training
``viz``          pictures: cell diagrams and learning curves
``search``       the search task, its cost-aware reward and final pick, the study
``deploy``       packed, Keras and TensorFlow Lite export
``cli``          the scripts' entry point: flags, one-line errors, TensorFlow's log filter
===============  ===========================================================================

Importing ``enas`` (or any of its modules) changes nothing in the process environment;
TensorFlow's environment defaults are the scripts' (:mod:`enas.cli.tf_log`).
"""
