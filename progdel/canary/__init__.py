"""The client-side canary.

Where each part lives:

- ``engine``: how a tick is decided, a pure function of the spec, the stored status and an
  observation (``tick``), and what a tick needs observed first (``needs``);
- ``runner``: how a tick is carried out against a cluster (observe, ask the engine, act, store
  the status, wait); ``replay``: the same engine over Prometheus history, with no cluster;
- ``measure``: a canary's metrics observed at one time; ``records``: what a run streams (tick,
  event, result), the same for every driver and view;
- ``store`` (the Canary object, its status and Lease), ``workloads``, ``webhooks``, ``alerts``,
  ``traffic`` (the served split), ``revision`` and ``flaggerhash`` (Flagger's revision hashes),
  ``observe`` (a canary Flagger drives), ``preflight`` (``canary check``).

Importing the package imports none of them.
"""
