"""``orchestrator ui``: serve the review web app over the tracking database (needs the ``[ui]`` extra)."""

from __future__ import annotations

import click

from orchestrator.cli.output import State, pass_state
from orchestrator.errors import ConfigError


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--open", "open_browser", is_flag=True, help="Open the Runs page in the default browser.")
@click.option("--token", envvar="ORCHESTRATOR_UI_TOKEN", metavar="TOKEN",
              help="Access token every request must carry (open the UI once with ?token=TOKEN). "
                   "Env: ORCHESTRATOR_UI_TOKEN.")
@pass_state
def ui(state: State, host: str, port: int, open_browser: bool, token: str | None) -> None:
    """Serve the review UI: runs, galleries, comparisons, captions, effectiveness and the timeline."""
    from orchestrator.ui.server import check_bind  # here for start-up speed

    check_bind(host, token)
    try:
        from orchestrator.ui.server import build_server

        server = build_server(state["settings"].database_url, host=host, port=port, token=token)
    except ModuleNotFoundError as error:
        raise ConfigError(f"the UI needs {error.name}, which is not installed",
                          "pip install 'lora-orchestrator[ui]'") from None
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/runs"
    click.echo(f"serving {url}" + (" (needs the token: open it once with ?token=…)" if token else ""), err=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url + (f"?token={token}" if token else ""))
    server.run()
