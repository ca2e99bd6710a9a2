"""The worker and its child processes (internal: ``jobrunner work`` is the interface).

Where code runs, by module::

    node.py          worker   the node: slots, signals, health, metrics, publishers
    slot.py          worker   one slot: reserve → validate → child → decide → end
    lease.py         worker   a job's reservation: touch, delete, release, bury
    child_handle.py  worker   the worker's handle on one child process
    child_main.py    child    the child's main loop
    executor.py      child    one job: resolve → fetch → run → publish done
    progress.py      child    running documents for ctx.progress
    protocol.py      both     every message between worker and child, and the framing
    decide.py        both     the pure decision: what happens to a job after its run
    documents.py     both     result documents and the one way to publish failures

Nothing is imported here: the child, and :mod:`jobrunner.testing`, load only
the modules they use.
"""
