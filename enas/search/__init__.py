"""Searching: the ENAS search task with its final pick (``search_task``), the cost-aware reward,
report and Pareto front (``search_cost``), ranking architectures on a whole split and Kendall's
tau (``ranking``), the search-vs-random study (``study``), its report (``study_report``) and its statistics: bootstrap
intervals, Welch's t-test, tau's interval (``statistics``)."""
