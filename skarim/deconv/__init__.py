"""Deconvolution of (channel, tile) windows inside exact major cycles.

- :mod:`~skarim.deconv.operator`, :mod:`~skarim.deconv.rim`, :mod:`~skarim.deconv.clean`:
  the measurement operator, the network, classical CLEAN and projected gradient;
- :mod:`~skarim.deconv.deconvolver`: the tile-deconvolver interface and its registry, with
  :mod:`~skarim.deconv.rim_deconvolver` and :mod:`~skarim.deconv.hogbom_deconvolver`;
- :mod:`~skarim.deconv.tiles`, :mod:`~skarim.deconv.noise`: tile windows and noise levels;
- :mod:`~skarim.deconv.passes`: a major cycle's pass over the tiles of a channel;
- :mod:`~skarim.deconv.major_cycle`: exact residuals that accept or refuse a cycle, pruning;
- :mod:`~skarim.deconv.device`, :mod:`~skarim.deconv.weights`: device and precision, weights
  files.
"""
