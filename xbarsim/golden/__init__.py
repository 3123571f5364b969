"""Golden reference suite: cases other crossbar simulators can validate against.

* :mod:`xbarsim.golden.schema` -- the datasets of every kind of case, the error metric and the
  tolerances (plain data and NumPy; docs/golden.md documents the same tables);
* :mod:`xbarsim.golden.spec` -- the YAML specification of a suite (the default one ships as
  ``xbarsim/golden/data/default.yaml``);
* :mod:`xbarsim.golden.make` -- computes the cases (``xbarsim golden make``);
* :mod:`xbarsim.golden.check` -- compares another tool's results with a suite
  (``xbarsim golden check``);
* :mod:`xbarsim.golden.adapters` -- reads and writes results as HDF5, npz or CSV, and runs
  other tools (badcrossbar) on a suite (``xbarsim golden adapt``).

The shipped ngspice-verified tiles are in ``xbarsim/golden/data/ngspice``.
"""
