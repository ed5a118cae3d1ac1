"""Render the project's jinja2 templates (templates/ in a checkout, /usr/share when installed).

Files pyctr writes for people to read and edit, such as an OCI config.json, are
data, so they live as templates rather than as Python dicts: they can be
diffed against what runc writes. This is the one place that sets up jinja2, so
every template gets the same environment: a missing value is an error
(StrictUndefined), nothing is HTML-escaped (values go in through `tojson`) and
a template's final newline, or its absence, is kept.

jinja2 is imported only when a template is rendered: it is never needed on the
container start path (see tests/unit/test_start_path.py), and neither is
pathlib, so this module imports nothing at the top.
"""

from __future__ import annotations

from pyctr_systemd.errors import PyctrError

INSTALLED = "/usr/share/pyctr-systemd/templates"


def search_path() -> list[str]:
    """Where templates are looked up, in order: the checkout's templates/, then the installed ones."""
    from pathlib import Path

    return [str(Path(__file__).resolve().parents[1] / "templates"), INSTALLED]


def render(name: str, **values: object) -> str:
    """The template `name` (e.g. "config.json.j2") rendered with `values`."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path()),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        raise PyctrError(f"template {name} not found in {' or '.join(search_path())}") from None
    return template.render(**values)
