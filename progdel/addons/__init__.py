"""Addons: Istio, Prometheus and Flagger, installed from pinned Helm charts and taken out again.

``catalog`` says what each addon is; ``charts`` fetches and verifies chart
archives; ``render`` runs Helm's template engine; ``install`` applies the
rendered objects with server-side apply and records them in an ``inventory``
so that ``status`` and ``remove`` know exactly what progdel put in the cluster.
"""
