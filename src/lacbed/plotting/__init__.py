"""Plotting with matplotlib (an edge module: nothing in the physics core imports it).

Submodules: ``potential`` (projected-potential images), ``pattern`` (LACBED patterns),
``dataset`` (montages), ``ml`` (galleries, learning curves). Import them lazily.
"""
