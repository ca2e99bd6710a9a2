"""Publishers: backends that make a result document visible at its result URL.

A publisher is a class registered in entry-point group
``jobrunner.publishers``, built with the worker's :class:`~jobrunner.config.Config`.
See :class:`~jobrunner.publish.base.Publisher` for the contract.
"""

from jobrunner.publish.base import Publisher, PublisherChain

__all__ = ["Publisher", "PublisherChain"]
