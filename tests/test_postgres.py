"""PostgreSQL specifics that Supabase relies on: RLS, security_invoker views, Alembic outside `public`,
the transaction pooler (no prepared statements) and libpq parameters such as sslmode."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import wait_for_port
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from orchestrator.errors import DatabaseError
from orchestrator.tracking import db
from orchestrator.tracking.entities import NewRun
from orchestrator.tracking.models import Base
from orchestrator.tracking.store import TrackingStore
from orchestrator.tracking.views import VIEW_COLUMNS


def _scalar_rows(url: str, sql: str):
    engine = db.create_engine_for(db.resolve_url(url))
    with engine.connect() as connection:
        rows = connection.execute(sa.text(sql)).all()
    engine.dispose()
    return rows


def test_row_level_security_on_every_public_table(pg_url):
    rows = _scalar_rows(
        pg_url,
        "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r'",
    )
    tables = dict(rows)
    assert set(tables) == {t.name for t in Base.metadata.sorted_tables}
    assert all(tables.values()), [name for name, on in tables.items() if not on]


def test_views_are_security_invoker(pg_url):
    rows = _scalar_rows(
        pg_url,
        "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'v'",
    )
    options = dict(rows)
    assert set(options) == set(VIEW_COLUMNS)
    for name, reloptions in options.items():
        assert "security_invoker=true" in (reloptions or []), name


def test_alembic_version_table_is_not_in_public(pg_url):
    rows = _scalar_rows(pg_url, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'")
    assert [r[0] for r in rows] == [db.VERSION_TABLE_SCHEMA]


def test_no_prepared_statements_are_left_on_the_server(pg_url):
    store = TrackingStore(pg_url)
    run = store.create_run(NewRun(name="prepared"))
    with store.engine.connect() as connection:
        for _ in range(12):  # psycopg prepares after 5 executions unless prepare_threshold is None
            connection.execute(sa.text("SELECT name FROM runs WHERE id = :id"), {"id": run.id}).all()
        prepared = connection.execute(sa.text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
    store.close()
    assert prepared == 0


def test_sslmode_in_the_url_is_honoured(pg_url):
    # The local server has SSL off: sslmode=require must fail (so the parameter reached libpq), disable must work.
    required = make_url(pg_url).update_query_dict({"sslmode": "require"}).render_as_string(hide_password=False)
    with pytest.raises(DatabaseError) as caught:
        TrackingStore(required)
    assert "SSL" in caught.value.message
    disabled = make_url(pg_url).update_query_dict({"sslmode": "disable"}).render_as_string(hide_password=False)
    with TrackingStore(disabled) as store:
        assert store.list_runs() == []


def test_password_never_appears_in_errors():
    url = "postgresql://postgres:s3cret-Pa55@127.0.0.1:1/test"
    with pytest.raises(DatabaseError) as caught:
        TrackingStore(url)
    text = caught.value.one_line()
    assert "s3cret-Pa55" not in text
    assert "127.0.0.1" in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def transaction_pooler(pg_url):
    """A real PgBouncer in transaction mode in front of the test server: what Supabase's port 6543 pooler is."""
    import os
    import tempfile

    # Not under pytest's tmp_path: when run as root, pgbouncer runs as `postgres` and must read its files.
    tmp_path = Path(tempfile.mkdtemp(prefix="orch-pgbouncer-"))
    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer); .ci/run installs it")
    server = make_url(pg_url)
    port = _free_port()
    (tmp_path / "users.txt").write_text('"postgres" ""\n')
    (tmp_path / "pgbouncer.ini").write_text(
        f"""[databases]
{server.database} = host={server.host} port={server.port or 5432} dbname={server.database}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {tmp_path / 'users.txt'}
pool_mode = transaction
max_client_conn = 50
default_pool_size = 1
logfile = {tmp_path / 'pgbouncer.log'}
pidfile = {tmp_path / 'pgbouncer.pid'}
ignore_startup_parameters = extra_float_digits,options
"""
    )
    command = [binary, str(tmp_path / "pgbouncer.ini")]
    user = []
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        user = ["runuser", "-u", "postgres", "--"]
        os.chmod(tmp_path, 0o777)
        for name in ("users.txt", "pgbouncer.ini"):
            os.chmod(tmp_path / name, 0o644)
    process = subprocess.Popen(user + command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port(port, process, "pgbouncer")
    yield server.set(port=port).render_as_string(hide_password=False)
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_works_through_a_transaction_pooler(transaction_pooler):
    # Two clients share the pooler's single server connection, as Supabase's pooler shares backends: a prepared
    # statement of one client would collide with, or be missing for, the other.
    with TrackingStore(transaction_pooler) as first, TrackingStore(transaction_pooler) as second:
        run = first.create_run(NewRun(name="through-the-pooler"))
        for _ in range(10):
            for store in (first, second):
                store.record_event(run.id, "log", message="tick")
                assert store.get_run(run.id).name == "through-the-pooler"
        first.set_status(run.id, "running")
        second.set_status(run.id, "succeeded")
        assert len(first.events(run.id, kind="log")) == 20
        assert second.query_view("training_summary", filters={"run_id": run.id}).rows[0][2] == "succeeded"
