"""twin.hardware: the modelled hardware that turns a stage's Work into simulated time.

- ``profile``: hardware profiles from ``hardware/*.yaml`` (CPU, memory, arrays,
  link) and the CPU cost tables of ``hardware/costs/*.yaml``.
- ``cpu``: hardware threads as one FCFS pool, with Hyper-Threading priced.
- ``disk``: access time by hand and a spindle that serves one I/O at a time.
- ``array``: single disk, RAID 1, RAID 5, RAID 10, degraded mode, rebuild and a
  controller write-back cache.
- ``memory``: the page cache, LRU over bytes.
- ``network``: a link with bandwidth and latency.
- ``host``: a whole host; ``Host.execute(work, array)`` spends a stage's work.

Everything queueing is a ``twin.resources.Servers`` (or summed over several),
so utilisation and queue length are measured uniformly. Nothing is re-exported
here: import from the modules.
"""
