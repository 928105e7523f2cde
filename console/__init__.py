"""The operator's console: the `mirror-rollout` command, the rehearsal and the run watcher.

The top layer: it may import flows, tasks and the core; nothing imports it.
"""
