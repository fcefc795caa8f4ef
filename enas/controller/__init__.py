"""Architecture sampling: the controller interface, the uniform random controller and the
REINFORCE trainer with its moving-average baseline (``controller``), and the ENAS LSTM
controller of the micro space (``micro_controller``)."""
