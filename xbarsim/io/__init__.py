"""Input/output: HDF5 result files (:mod:`.hdf5`) and ngspice netlists (:mod:`.spice`)."""
