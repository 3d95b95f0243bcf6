"""Device farms on Ray (extra ``hwloop[cluster]``): one training run per device, in parallel.

The Python entry point is ``hwloop.run_farm`` (`hwloop.farm.api.run_farm`).
Owns the farm's record (`units`: unit specs, names, farm.json), the Ray
session (`api`), the device actors (`actor`) and the scheduling loop
(`driver`). Importing this package needs no Ray; running a farm does.

May import: hwloop.run (each unit is a ``train``), hwloop.rundir,
hwloop.registry, hwloop.querylog, hwloop.device, hwloop.errors. Only the CLI
imports it.
"""
