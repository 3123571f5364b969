"""Input/output: HDF5 result files (:mod:`xbarsim.io.hdf5`) and ngspice netlists (:mod:`xbarsim.io.spice`)."""
