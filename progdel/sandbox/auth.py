"""Who is asking: the sandbox's bearer-token authentication.

Every request must carry a credential, as on a real cluster (the sandbox serves HTTPS only,
so kubectl and the kubernetes client both send the kubeconfig's token):

* ``Authorization: Bearer <admin token>``, the token of the kubeconfig the sandbox writes
  (random, one per data dir, in ``<data dir>/admin-token``), is the admin: user
  ``sandbox-admin`` in the groups ``system:masters`` and ``system:authenticated``.
* Any other bearer token is looked up in ``<data dir>/tokens.csv``, a static token file in
  the format of kube-apiserver's ``--token-auth-file``: one ``token,user,uid,"group1,group2"``
  line per user (the groups column is optional). The file is read again whenever it changes.
  Its users are also in ``system:authenticated`` and are subject to RBAC (see ``rbac.py``).
* A request without credentials is ``system:anonymous`` (group ``system:unauthenticated``) on
  the health and version endpoints only, which RBAC's default ``system:public-info-viewer``
  binding opens to it, as a cluster whose anonymous authentication is limited to those paths
  does; anywhere else it is 401.

A token that is none of these, or credentials of another scheme, are answered with 401
Unauthorized.

A request may act as another user with the ``Impersonate-User``, ``Impersonate-Group`` and
``Impersonate-Uid`` headers (``kubectl --as USER --as-group GROUP``), if RBAC lets its sender
``impersonate`` them (the admin may).
"""

from __future__ import annotations

import csv
import hmac
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from progdel.sandbox.objects import ApiError

ADMIN_USER = "sandbox-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
ANONYMOUS_USER = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
# Where a request without credentials is system:anonymous rather than a 401.
ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class User:
    """An authenticated caller: name, uid and groups, as the RBAC rules see them."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        """Members of ``system:masters`` may do anything; RBAC is not consulted for them."""
        return MASTERS in self.groups


ADMIN = User(ADMIN_USER, "", (MASTERS, AUTHENTICATED))
ANONYMOUS = User(ANONYMOUS_USER, "", (UNAUTHENTICATED,))


def impersonated(name: str, groups: list[str], uid: str = "") -> User:
    """The user a request impersonates: the named groups, plus those every such user is in.

    A service account (``system:serviceaccount:NS:NAME``) is also in
    ``system:serviceaccounts`` and ``system:serviceaccounts:NS``.
    """
    extra: list[str] = []
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        ns = name[len(SERVICE_ACCOUNT_PREFIX) :].split(":", 1)[0]
        extra = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    if name != ANONYMOUS_USER:
        extra.append(AUTHENTICATED)
    return User(name, uid, tuple(g for g in dict.fromkeys([*groups, *extra]) if g))


def unauthorized() -> ApiError:
    """The 401 Status a Kubernetes API server answers for credentials it does not accept."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def parse_token_file(text: str) -> dict[str, User]:
    """Token -> user for the lines of a token file; blank lines and lines with too few fields are skipped.

    Every user gets ``system:authenticated`` besides the groups the line names.
    """
    users: dict[str, User] = {}
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if len(row) < 3 or not row[0].strip():
            continue
        token, name, uid = (field.strip() for field in row[:3])
        groups = [g.strip() for g in row[3].split(",")] if len(row) > 3 else []
        ordered = [g for g in dict.fromkeys([*groups, AUTHENTICATED]) if g]
        users[token] = User(name, uid, tuple(ordered))
    return users


class TokenAuthenticator:
    """Maps a request's ``Authorization`` header (and path) to a ``User``, or ``None`` when it is
    to be answered 401."""

    def __init__(self, admin_token: str, token_file: Path | None) -> None:
        if not admin_token:
            raise ValueError("the admin token must not be empty")
        self.admin_token = admin_token
        self.token_file = token_file
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, User] = {}

    def authenticate(self, authorization: str | None, path: str) -> User | None:
        if not authorization:
            return ANONYMOUS if path in ANONYMOUS_PATHS else None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return ADMIN
        return self._tokens().get(token)

    def _tokens(self) -> dict[str, User]:
        """The token file's users, read again when its mtime, size or inode changed."""
        if self.token_file is None:
            return {}
        try:
            st = os.stat(self.token_file)
        except OSError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                try:
                    text = self.token_file.read_text(encoding="utf-8")
                except OSError:
                    return {}
                self._users, self._stamp = parse_token_file(text), stamp
            return self._users
