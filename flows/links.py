"""Links into the Prefect UI that the platform hands a person: the alerts' webhook messages, the line a gate
prints when it starts waiting, `mlops approvals show`.

With the server's auth on (`mlops up` gives its clients ``PREFECT_API_AUTH_STRING``), a browser that has not
signed in and opens a page directly shows "Authentication failed." instead of the page. The UI's own login
page takes the page to go to after sign-in (``redirectTo``, a path inside the V2 UI), and sends a browser that
is already signed in straight there; so with auth on every link goes through it. Links land on the V2 UI,
the one whose "⋮" menu the approver's page describes, with auth off as well.
"""

from __future__ import annotations

from uuid import UUID

from prefect.settings import get_current_settings

V2_UI = "/v2"  # where the server mounts the V2 UI under its UI URL
LOGIN = f"{V2_UI}/login"  # the sign-in page; `redirectTo` in its query is the page to open after


def ui_link(ui_url: str, path: str, *, auth_on: bool) -> str:
    """The address of the V2 UI's page ``path`` (e.g. ``/runs/flow-run/<id>``) on the UI at ``ui_url``; with
    ``auth_on``, through the login page, so that a browser not yet signed in lands on the page after sign-in.

    ``path`` is put in the query as it is, unencoded, so that a Jinja placeholder in it (an automation's
    message) still renders: it must be a plain path, with no query or fragment of its own.
    """
    if not path.startswith("/") or any(c in path for c in "?#&"):
        raise ValueError(f"a UI page is a plain path starting with '/', not {path!r}")
    base = ui_url.rstrip("/")
    if auth_on:
        return f"{base}{LOGIN}?redirectTo={path}"
    return f"{base}{V2_UI}{path}"


def flow_run_path(flow_run_id: UUID | str) -> str:
    """The UI page of a flow run (where an approver resumes a paused one)."""
    return f"/runs/flow-run/{flow_run_id}"


def prefect_ui_link(path: str) -> str | None:
    """``ui_link`` for the server of the current Prefect settings: its UI URL (``PREFECT_UI_URL``, by default the
    API URL without ``/api``), auth on when this client holds a credential. None on the ephemeral default,
    which has no UI to open."""
    settings = get_current_settings()
    if not settings.ui_url:
        return None
    auth = settings.api.auth_string
    return ui_link(settings.ui_url, path, auth_on=bool(auth and auth.get_secret_value()))
