"""Experiment grids: many students distilled and evaluated, aggregated into tables and plots.

``trials`` (one cached trial per method × bits × seed, run in parallel processes), ``table``
(QPD against every baseline), ``frontier`` (widths × bits), ``ablation`` (QPD with one idea off).
"""
