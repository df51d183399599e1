"""L-DoG (Ivgi, Hinder & Carmon 2023, Sec. 4 "layer-wise DoG"): DoG with the distance and the
gradient sum taken per tensor, so each layer gets its own step size. See dog.py for the formula.
"""

from __future__ import annotations

from bench.optimizers.dog import DoG


class LDoG(DoG):
    layerwise = True
