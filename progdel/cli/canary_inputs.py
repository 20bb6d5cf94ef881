"""What the canary commands (``canary`` and ``canary check``) read from their flags, progdel.yaml
and Canary files, in one place both import."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from progdel.cli.options import GlobalOptions

if TYPE_CHECKING:
    from progdel.canary.admission import Admitted
    from progdel.canary.runner import RunOptions
    from progdel.config.project import Defaults


def run_options(opts: GlobalOptions, defaults: Defaults | None = None, **kw: Any) -> RunOptions:
    """``RunOptions`` with the provider and label settings of the flags and progdel.yaml."""
    from progdel.canary.runner import RunOptions

    return RunOptions(
        mesh_provider=opts.mesh_provider,
        project_mesh_provider=defaults.mesh_provider if defaults else None,
        label_prefixes=tuple(defaults.include_label_prefix) if defaults else (),
        **kw,
    )


def show_notes(notes: list[str]) -> None:
    """What a user should read once (a conversion, the provider chosen, fields not used)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def admit_file(
    opts: GlobalOptions, file: Path, defaults: Defaults | None, kube: Any = None, namespace: str | None = None
) -> Admitted:
    """The Canary of ``file``, admitted (see ``canary.admission``): refusals come first, before
    anything is read from or written to the cluster. With ``kube``, a provider init recorded on
    the stored Canary is kept unless ``--mesh-provider`` says otherwise."""
    from progdel.canary.admission import admit
    from progdel.config.canary import canary_document
    from progdel.kube.resources import CANARIES
    from progdel.routing.provider import PROVIDER_ANNOTATION

    doc = canary_document(file)
    flag, default = opts.mesh_provider, defaults.mesh_provider if defaults else None
    admitted = admit(doc, namespace or opts.namespace, flag=flag, project_default=default)
    if kube is None or admitted.choice.explicit or flag:
        return admitted
    ns = namespace or opts.namespace or admitted.model.metadata.namespace or kube.namespace
    stored = kube.get_or_none(CANARIES, admitted.model.name, ns)
    recorded = (((stored or {}).get("metadata") or {}).get("annotations") or {}).get(PROVIDER_ANNOTATION)
    if not recorded or recorded == admitted.choice.provider:
        return admitted
    meta = doc.data.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), PROVIDER_ANNOTATION: recorded}
    return admit(doc, ns, flag=flag, project_default=default)
