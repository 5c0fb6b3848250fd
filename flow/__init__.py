"""Above the stages: what drives several of them.

``demo`` runs the whole flow (training → hw_build → host) on one environment; ``experiments/``
holds the grids of trials (QPD table, frontier, ablation) that compare students by return and
by what they cost; ``deploy`` makes the folder ``make deploy`` copies to a board; ``designs`` builds many designs at once; ``executors`` runs trials and designs in local processes or as Ray tasks. Nothing in training/, hw_build/ or host/ imports this package.
"""
