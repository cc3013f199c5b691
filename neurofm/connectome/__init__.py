"""Dynamic functional connectome: windowed affinities → non-negative tensor factorisation → communities."""
