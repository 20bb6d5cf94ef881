"""Promotion: move a version of an app along ordered environments.

- ``plan``: the rules (strategies, order gate, version choice), pure;
- ``versions``: semver ordering and image references;
- ``direct``: set a Deployment's image and wait for the rollout (undone if it fails);
- ``gitops``, ``git``, ``yamledit``, ``pullrequest``: promotion through an
  environment git repository and an optional pull request;
- ``clusters``: each environment's cluster (its kubeconfig context);
- ``verify``: a version proving itself in an environment by metric checks over a soak time;
- ``inventory``, ``history``: what runs where, and the promotion records;
- ``orchestrate``: one promotion, start to end.
"""
