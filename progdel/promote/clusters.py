"""The clusters of a project's environments: one connection per kubeconfig context.

An environment names the kubeconfig context of its cluster (``context: prod``); without one it
lives in the default cluster (``--context``, else the kubeconfig's current context). Every read
or write of an environment goes through ``Clusters.kube(env)``, so a promotion from dev to
production may read dev's cluster and write production's.

Connections are made when first asked for (building one reads the kubeconfig; it does not call
the cluster), and kept: two environments in one context share one. Code that runs per
environment in threads asks for its connections first (``connect_all``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from progdel.config.project import Environment
from progdel.errors import InvalidInput

if TYPE_CHECKING:
    from progdel.kube.client import Kube

Connect = Callable[[str | None], "Kube"]


class Clusters:
    """The connection of each environment, by its context (``None``: the default one)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._by_context: dict[str | None, Kube] = {}

    @classmethod
    def single(cls, kube: Kube) -> Clusters:
        """Every environment in the cluster of ``kube``, whatever context it names."""
        return cls(lambda _context: kube)

    def kube(self, env: Environment) -> Kube:
        """``env``'s connection; a ``context`` the kubeconfig lacks is refused naming ``env``."""
        if env.context not in self._by_context:
            try:
                self._by_context[env.context] = self._connect(env.context)
            except InvalidInput as err:
                if env.context is None:
                    raise
                raise InvalidInput(f"environment {env.name}: {err.message}") from None
        return self._by_context[env.context]

    def connect_all(self, envs: Iterable[Environment]) -> None:
        """Make the connections of ``envs`` now (before threads use them)."""
        for env in envs:
            self.kube(env)

    def context(self, env: Environment) -> str:
        """The context name of ``env``'s cluster, as the CLUSTER column shows it."""
        return env.context or self.kube(env).context


def clusters_of(source: Clusters | Kube) -> Clusters:
    """``source`` as ``Clusters``: a single ``Kube`` serves every environment."""
    return source if isinstance(source, Clusters) else Clusters.single(source)
