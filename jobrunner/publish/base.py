"""The publisher contract and the chain that runs several publishers in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from jobrunner.config import Config
from jobrunner.errors import JobFailure, PublishFailed
from jobrunner.plugins import load_publisher_class

__all__ = ["Publisher", "PublisherChain", "build_publishers"]


@runtime_checkable
class Publisher(Protocol):
    """Makes a result document visible at its result URL.

    Implementations are built once per process as ``cls(config)`` and must be
    safe to call from one thread at a time. A reader of the result URL must
    never see a partial document: publish atomically.
    """

    def check(self, url: str) -> None:
        """Refuse, before the job runs, a result URL this publisher cannot serve.

        Raises:
            jobrunner.errors.ResultRefused: naming what is wrong with the URL.
        """

    def publish(self, url: str, body: bytes, *, final: bool = True) -> None:
        """Publish ``body`` (a complete JSON document) at ``url``, atomically.

        ``final`` is False for ``running`` (status and progress) documents:
        they are superseded soon, so a publisher may skip costly durability
        (fsync) or replication for them; the final document must be durable.

        Raises:
            jobrunner.errors.ResultRefused: the URL is not publishable.
            jobrunner.errors.PublishFailed: the write failed (retryable or not).
        """

    def close(self) -> None:
        """Release connections and background work."""


class PublisherChain:
    """Several publishers used in the order given (e.g. file, then rsync)."""

    def __init__(self, publishers: Sequence[Publisher]) -> None:
        self.publishers = list(publishers)

    def check(self, url: str) -> None:
        """Run every publisher's URL check."""
        for publisher in self.publishers:
            publisher.check(url)

    def publish(self, url: str, body: bytes, *, final: bool = True) -> None:
        """Publish with each publisher in turn; the first failure stops the chain.

        Raises:
            JobFailure: the failure of the publisher that failed.
        """
        for publisher in self.publishers:
            try:
                publisher.publish(url, body, final=final)
            except JobFailure:
                raise
            except Exception as exc:  # a third-party publisher's own error
                raise PublishFailed(
                    f"publisher {type(publisher).__name__} failed: {type(exc).__name__}: {exc}"
                ) from exc

    def close(self) -> None:
        """Close every publisher."""
        for publisher in self.publishers:
            publisher.close()


def build_publishers(config: Config) -> PublisherChain:
    """Build the publishers named by ``config.publisher``, in order.

    Raises:
        jobrunner.errors.ConfigError: an unknown publisher or one that cannot
            work with these settings.
    """
    return PublisherChain([load_publisher_class(name)(config) for name in config.publisher])
