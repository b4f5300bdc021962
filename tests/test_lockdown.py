"""Lock-down of a shared server: the UI's store connections, uploads, export paths, and the
Streamlit settings (bound to loopback, XSRF on, no tracebacks shown to users).

The SQL box's refusals (files, network, ATTACH, INSTALL/LOAD, writes, SET) are tested in
tests/test_sqlguard.py (``ATTACKS``: each refused by the parser check and by the store).
"""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from backend.export import BadExportName, export
from backend.export.target import check_export_name
from ui import search, uploads

REPO = Path(__file__).resolve().parent.parent
PICK = [3, 10, 57]


# -- the UI's DuckDB connection ----------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_con(demo_home: Path):
    """A cursor from ui/state's shared connection, exactly as every page gets it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TAILSCOPE_HOME", str(demo_home))
    from ui import state

    con = state.connection("demo")
    yield con
    con.close()
    mp.undo()


def rows(demo_home: Path) -> int:
    from backend.store import connect

    with connect("demo", demo_home) as con:
        return con.execute("SELECT count(*) FROM samples").fetchone()[0]


def test_ui_connection_reads_the_store(ui_con, demo_home: Path) -> None:
    assert ui_con.execute("SELECT count(*) FROM samples").fetchone()[0] == rows(demo_home) > 500


def test_ui_connection_settings_are_locked(ui_con) -> None:
    got = dict(ui_con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('access_mode', "
        "'enable_external_access', 'lock_configuration', 'autoinstall_known_extensions', "
        "'autoload_known_extensions')").fetchall())  # fmt: skip
    assert got == {"access_mode": "read_only", "enable_external_access": "false",
                   "lock_configuration": "true", "autoinstall_known_extensions": "false",
                   "autoload_known_extensions": "false"}  # fmt: skip


@pytest.mark.parametrize("sql", [
    "CREATE TABLE t (a INT)",
    "DELETE FROM samples WHERE row_id = 3",
    "UPDATE samples SET caption = 'x' WHERE row_id = 3",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "COPY (SELECT 1) TO '/tmp/ts_lockdown_x.csv'",
    "ATTACH '/tmp/ts_lockdown_x.db' AS x",
    "INSTALL httpfs",
    "SELECT * FROM 'https://example.com/x.parquet'",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
])  # fmt: skip
def test_ui_connection_refuses(ui_con, demo_home: Path, sql: str) -> None:
    with pytest.raises(duckdb.Error):
        ui_con.execute(sql).fetchall()
    assert not Path("/tmp/ts_lockdown_x.csv").exists()
    assert not Path("/tmp/ts_lockdown_x.db").exists()
    assert ui_con.execute("SELECT count(*) FROM samples").fetchone()[0] == rows(demo_home)


# -- uploads -----------------------------------------------------------------------------------


def png(w: int = 16, h: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), "teal").save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(("name", "data", "says"), [
    ("cat.png", png(), None),
    ("cat.JPG", png(), None),  # a PNG named .JPG: the content decides
    ("page.jpg", b"<!doctype html><html><body>not an image</body></html>", "not a readable"),
    ("empty.png", b"", "is empty"),
    ("cut.png", png()[:40], "not a readable"),
    ("cat.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not one of the accepted types"),
    ("cat", png(), "not one of the accepted types"),
    ("big.png", b"\x89PNG" + b"\0" * (uploads.IMAGE_MB * 2**20), f"limit is {uploads.IMAGE_MB} MB"),
])  # fmt: skip
def test_image_upload_checks(name: str, data: bytes, says: str | None) -> None:
    why = uploads.image_refusal(name, data)
    assert (why is None) if says is None else (says in why), why


@pytest.mark.parametrize(("name", "data", "says"), [
    ("words.txt", b"circle\nhexagon\n", None),
    ("words.csv", "café,crème\n".encode("cp1252"), None),  # the parser reads it as cp1252
    ("meta.json", b'["circle", "hexagon"]', None),
    ("words.txt", "circle\n".encode("utf-16"), "NUL bytes"),
    ("photo.txt", png(), "NUL bytes"),
    ("words.exe", b"circle\n", "not one of the accepted types"),
    ("big.txt", b"a\n" * (uploads.VOCAB_MB * 2**19 + 1), f"the limit is {uploads.VOCAB_MB} MB"),
])  # fmt: skip
def test_vocabulary_upload_checks(name: str, data: bytes, says: str | None) -> None:
    why = uploads.text_refusal(name, data)
    assert (why is None) if says is None else (says in why), why


class FakeUpload:
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def test_search_upload_handler_keeps_images_and_refuses_the_rest(monkeypatch) -> None:
    """The Search page's on_change handler: a real PNG becomes the query; HTML saved as .jpg
    is refused with a message and the previous query image is dropped."""
    ss: dict = {}
    monkeypatch.setattr(search.st, "session_state", ss)
    ss[search.W_UPLOAD] = FakeUpload("cat.png", png(40, 30))
    search.on_upload()
    assert ss[search.IMAGE]["name"] == "cat.png" and search.UPLOAD_REFUSED not in ss
    ss[search.W_UPLOAD] = FakeUpload("page.jpg", b"<html>not an image</html>")
    search.on_upload()
    assert search.IMAGE not in ss
    assert "not a readable image" in ss[search.UPLOAD_REFUSED]
    ss[search.W_UPLOAD] = None
    search.on_upload()
    assert search.IMAGE not in ss and search.UPLOAD_REFUSED not in ss


# -- export paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["x\n", "../../etc", "~root", "a/../../b", "C:\\x", "x\x00y"])
def test_export_names_from_the_ui_stay_under_the_export_folder(bad: str) -> None:
    """More hostile names than tests/test_export.py's; the Export page checks with this."""
    with pytest.raises(BadExportName):
        check_export_name(bad)


def test_export_does_not_write_through_a_planted_symlink(demo_home: Path, tmp_path: Path) -> None:
    """An export folder name that is a symlink to elsewhere is replaced, never written into."""
    outside = tmp_path / "outside"
    outside.mkdir()
    exports = demo_home / "demo" / "exports"
    exports.mkdir(exist_ok=True)
    link = exports / "lockdown-link"
    link.symlink_to(outside, target_is_directory=True)
    try:
        try:
            export("demo", fmt="csv", out="lockdown-link", root=demo_home, row_ids=PICK,
                   overwrite=True)  # fmt: skip
        except Exception:  # noqa: BLE001 - refusing is fine too; writing outside is not
            pass
        assert list(outside.iterdir()) == []
    finally:
        if link.is_symlink():
            link.unlink()


@pytest.mark.parametrize("bad", ["demo\n", "../demo", "a/b", ""])
def test_dataset_and_subset_names_are_plain(bad: str) -> None:
    """Names become folders: a trailing newline used to pass the ``$`` of the pattern."""
    from backend.paths import BadName, check_name

    with pytest.raises(BadName):
        check_name(bad)


# -- Streamlit settings ------------------------------------------------------------------------


def config() -> dict:
    return tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())


def test_streamlit_defaults_are_safe_for_a_shared_server() -> None:
    from streamlit.config import ShowErrorDetailsConfigOptions as Details

    cfg = config()
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"].get("enableCORS", True) is True  # XSRF is off when CORS is off
    assert max(uploads.IMAGE_MB, uploads.VOCAB_MB) <= cfg["server"]["maxUploadSize"] <= 50
    assert cfg["client"]["showErrorDetails"] in {Details.NONE, Details.TYPE}


def test_streamlit_reads_our_config(monkeypatch) -> None:
    """Streamlit itself parses the file to these values (a typo would silently not apply)."""
    from streamlit import config as st_config

    monkeypatch.chdir(REPO)
    st_config.get_config_options(force_reparse=True)
    try:
        assert st_config.get_option("server.address") == "127.0.0.1"
        assert st_config.get_option("server.enableXsrfProtection") is True
        assert st_config.get_option("server.maxUploadSize") == config()["server"]["maxUploadSize"]
        assert st_config.get_option("client.showErrorDetails") == "none"
    finally:
        st_config.get_config_options(force_reparse=True)


def test_an_uncaught_error_shows_no_traceback_or_message(monkeypatch) -> None:
    from streamlit import config as st_config
    from streamlit.testing.v1 import AppTest

    monkeypatch.chdir(REPO)
    st_config.get_config_options(force_reparse=True)  # as the server reads it at start

    def app() -> None:
        raise ValueError("secret /srv/private/path")

    at = AppTest.from_function(app).run()
    assert at.exception, "the error is reported"
    shown = at.exception[0].message + "".join(at.exception[0].stack_trace)
    assert "secret" not in shown and "/srv/private" not in shown


def test_launchers_bind_loopback_except_inside_the_container() -> None:
    dev = (REPO / "dev.py").read_text()
    assert '"--server.address",\n            "127.0.0.1"' in dev
    docker = (REPO / "Dockerfile").read_text()
    assert "--server.address 0.0.0.0" in docker and "EXPOSE 8501" in docker
