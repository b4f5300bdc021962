"""The advanced SQL WHERE box: every attack refused twice over, legit conditions allowed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from backend.browse import columns
from backend.selection import BadSelection, Selection
from backend.sqlguard import QueryTimeout, UnsafeSQL, check_where, run_timed
from backend.store import connect


@pytest.fixture(scope="module")
def con(demo_home: Path):
    c = connect("demo", demo_home)
    yield c
    c.close()


@pytest.fixture(scope="module")
def cols(con) -> dict[str, str]:
    return columns(con)


# (text typed in the box, what the refusal says, a raw statement the store itself must refuse)
ATTACKS = [
    ("read_csv('/etc/passwd')", "read_csv() is not allowed",
     "SELECT count(*) FROM read_csv('/etc/passwd')"),
    ("COPY samples TO '/tmp/x.csv'", "syntax error", "COPY samples TO '/tmp/ts_h4_x.csv'"),
    ("1=1; ATTACH '/tmp/x.db'", "';'", "ATTACH '/tmp/ts_h4_x.db'"),
    ("INSTALL httpfs", "syntax error", "INSTALL httpfs"),
    ("LOAD httpfs", "syntax error", "LOAD httpfs"),
    ("(SELECT count(*) FROM read_text('/etc/hostname')) > 0", "subqueries",
     "SELECT (SELECT count(*) FROM read_text('/etc/hostname')) > 0"),
    ("getenv('HOME') IS NOT NULL", "getenv", "SELECT getenv('HOME')"),
    ("SET enable_external_access=true", "syntax error", "SET enable_external_access=true"),
    ("pragma", "no column named 'pragma'", None),
    ("PRAGMA database_list", "syntax error", None),
    ("width > 1 -- AND width < 0", "comments", None),
    ("width > 1) --", "comments", None),
    ("width > 1 /* x */", "comments", None),
    ("1=1) UNION SELECT * FROM samples WHERE (1=1", "single condition", None),
    ("width > 1) GROUP BY width HAVING (1=1", "single condition", None),
    ("(SELECT count(*) FROM samples a, samples b, samples c, samples d) > 0", "subqueries", None),
    ("EXISTS (SELECT 1)", "subqueries", None),
    ("count(*) > 1", "count_star() is not allowed", None),
    ("current_setting('threads') = '2'", "current_setting", None),
    ("width > ?", "parameters", None),
    ("main.lower(caption) = 'x'", "qualified", None),
    ("other.width > 1", "only columns of samples", None),
]  # fmt: skip


@pytest.mark.parametrize(("text", "says", "raw"), ATTACKS, ids=[a[0][:30] for a in ATTACKS])
def test_attack_refused_by_the_parser_check_and_by_the_store(con, cols, text, says, raw):
    with pytest.raises(BadSelection) as e:
        check_where(text, cols)
    assert says in str(e.value)
    with pytest.raises(BadSelection):  # also through the Selection that carries it
        Selection(sql=text).where(cols)
    if raw is not None:  # even if the check were bypassed, the read-only store says no
        with pytest.raises(duckdb.Error):
            con.execute(raw).fetchall()
    assert not Path("/tmp/ts_h4_x.csv").exists() and not Path("/tmp/ts_h4_x.db").exists()


def test_typos_get_a_short_message_pointing_at_the_users_text(cols):
    with pytest.raises(BadSelection, match="no column named 'widht' — did you mean 'width'"):
        check_where("widht > 200", cols)
    with pytest.raises(BadSelection) as e:
        check_where("width >> > 200", cols)
    msg = str(e.value)
    assert msg.startswith("SQL syntax error") and "character 10" in msg
    assert "SELECT * FROM samples" not in msg and "\n" not in msg


def test_type_errors_are_reported_when_checked_against_the_store(con, cols):
    with pytest.raises(BadSelection, match="SQL error"):
        check_where("width > 'wide'", cols, con)


def test_legit_conditions_match_the_rows_sql_would(con, cols):
    legit = (
        "width > 200 AND caption ILIKE '%cat%'",
        r"regexp_matches(url, '\.jpg$')",
        "caption = 'a;b' OR width BETWEEN 100 AND 150",
        "samples.aesthetic >= 5.5",
        "width::DOUBLE > 2.5",  # casts and boolean tests (refused before the allowlist)
        "CAST(width AS DOUBLE) / height > 1.2",
        "now() > DATE '2024-01-01' AND width::VARCHAR LIKE '2%'",
        "(width > 200) IS TRUE AND (height < 100) IS NOT TRUE",
        "CASE WHEN width > height THEN 'landscape' ELSE 'portrait' END = 'landscape'",
    )
    for text in legit:
        pred = check_where(text, cols, con)
        got = con.execute(f"SELECT count(*) FROM samples WHERE {pred}").fetchone()[0]
        assert got == con.execute(f"SELECT count(*) FROM samples WHERE {text}").fetchone()[0]
    sel = Selection(sql="width > 200", ranges={"aesthetic": (5.0, None)})
    where, params = sel.where(cols)
    n = con.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchone()[0]
    want = con.execute(
        "SELECT count(*) FROM samples WHERE width > 200 AND aesthetic >= 5"
    ).fetchone()
    assert n == want[0] and 0 < n < 600
    assert check_where("   ", cols) == "TRUE"


def test_a_slow_query_is_interrupted(con):
    slow = (
        "SELECT count(*) FROM samples a, samples b, samples c, samples d WHERE a.width > d.height"
    )
    with pytest.raises(QueryTimeout, match="took longer than 0.3 s; narrow it"):
        run_timed(con, slow, [], timeout=0.3)
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    assert run_timed(con, "SELECT count(*) FROM samples", [], timeout=5) == [(n,)]  # still usable


def test_unsafe_is_a_bad_selection():
    assert issubclass(UnsafeSQL, BadSelection)
