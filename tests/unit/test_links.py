"""Links into the Prefect UI: through its login page when the server's auth is on, straight to the page when off."""

from __future__ import annotations

from uuid import UUID

import pytest

from flows.links import flow_run_path, prefect_ui_link, ui_link

RUN = UUID("0b3c4f3e-1f0e-4c55-9a61-2d1c5a3e7f10")
UI = "http://127.0.0.1:4200"


def test_auth_off_opens_the_page_in_the_v2_ui() -> None:
    assert ui_link(UI, flow_run_path(RUN), auth_on=False) == f"{UI}/v2/runs/flow-run/{RUN}"
    assert ui_link(f"{UI}/", "/deployments", auth_on=False) == f"{UI}/v2/deployments"


def test_auth_on_goes_through_the_login_page_to_the_page() -> None:
    assert ui_link(UI, flow_run_path(RUN), auth_on=True) == f"{UI}/v2/login?redirectTo=/runs/flow-run/{RUN}"


def test_an_automation_placeholder_in_the_path_is_kept_for_jinja() -> None:
    path = flow_run_path("{{ event.resource.id[17:] }}")
    assert ui_link(UI, path, auth_on=True).endswith("redirectTo=/runs/flow-run/{{ event.resource.id[17:] }}")


@pytest.mark.parametrize("path", ["runs/flow-run/x", "/runs?tab=logs", "/runs#top", "/a&b"])
def test_only_plain_paths_are_accepted(path: str) -> None:
    with pytest.raises(ValueError, match="plain path"):
        ui_link(UI, path, auth_on=True)


def test_the_current_settings_decide_the_ui_and_whether_auth_is_on() -> None:
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_UI_URL,
        temporary_settings,
    )

    path = flow_run_path(RUN)
    with temporary_settings(
        updates={PREFECT_API_URL: f"{UI}/api", PREFECT_API_AUTH_STRING: "mlops:secret"},
        restore_defaults={PREFECT_UI_URL},
    ):
        assert prefect_ui_link(path) == f"{UI}/v2/login?redirectTo={path}"
    with temporary_settings(
        updates={PREFECT_API_URL: f"{UI}/api"}, restore_defaults={PREFECT_API_AUTH_STRING, PREFECT_UI_URL}
    ):
        assert prefect_ui_link(path) == f"{UI}/v2{path}"
    with temporary_settings(restore_defaults={PREFECT_API_URL, PREFECT_UI_URL}):
        assert prefect_ui_link(path) is None  # the ephemeral default has no UI to open
