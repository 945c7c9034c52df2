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

CPU threads, spindles and links are ``twin.hardware.disk.Timeline`` s: FCFS
servers that book each job's completion time when it is submitted, so a step
costs one SimPy timeout however many I/Os it does, and that keep the same
books as ``twin.resources.Servers`` (busy and queue integrals, queue maximum),
so utilisation and queue length are measured uniformly. Nothing is re-exported
here: import from the modules.
"""
