"""Pictures, written atomically: the cell diagrams of an architecture (``draw``), the training
and search curves of a run folder (``plots``) and the figure writer they share (``figures``)."""
