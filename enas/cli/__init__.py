"""The scripts' entry point: absl flags from the typed configuration (``flags``), running a
command with user errors as one line and exit status 2 (``command``), the train and search
scripts' ``main`` with ``--from_config`` (``script``), and TensorFlow's environment defaults and
C++ log filter, set only here (``tf_log``)."""
