"""Kubernetes access: one client wrapper over the official ``kubernetes`` client.

Everything in progdel that talks to a cluster goes through ``progdel.kube.client.Kube``;
it maps API errors to messages for people and exit codes from the contract.
"""
