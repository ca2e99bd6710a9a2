"""A template jobrunner plugin: the ``peaks`` job type."""
