"""Studies built on the circuit core: single-tile reports, benchmarks, sweeps.

Each study is a plain function returning data (a dataclass or a list of records); printing,
plotting and file output belong to the CLI, :mod:`xbarsim.plot` and :mod:`xbarsim.io.hdf5`.
"""
