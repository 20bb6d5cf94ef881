"""Promotion: move a version of an app along ordered environments.

- ``plan``: the rules (strategies, order gate, version choice), pure;
- ``versions``: semver ordering and image references;
- ``gitops``, ``git``, ``yamledit``, ``pullrequest``: promotion through an
  environment git repository and an optional pull request.

The direct kind (set the Deployment's image and wait for the rollout) talks to
the cluster and lives with the Kubernetes code.
"""
