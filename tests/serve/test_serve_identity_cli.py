"""``agentkit keys`` and the identity options of ``agentkit serve``, as a user types them."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest

from agentkit.cli import main

from .conftest import sessions_or_skip

sessions = sessions_or_skip()

BOT = '''
from agentkit import Agent, RunContext, tool
from agentkit.sessions import SQLiteStore

@tool
def whoami(ctx: RunContext[str]) -> str:
    """Say who is asking."""
    return ctx.deps

def person(principal):
    return principal.id

desk = Agent("scripted", [whoami], base_url="http://127.0.0.1:9/v1", api_key="sk-x-123456",
             store=SQLiteStore(r"{store}"))
bare = Agent("scripted", [], base_url="http://127.0.0.1:9/v1", api_key="sk-x-123456")
'''


@pytest.fixture
def bot(tmp_path: Path) -> Path:
    path = tmp_path / "bot.py"
    path.write_text(textwrap.dedent(BOT).replace("{store}", str(tmp_path / "desk.db")))
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(""), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_keys_add_prints_the_key_alone_on_the_last_line_and_stores_its_digest(
    bot: Path, tmp_path: Path
) -> None:
    code, out, err = run(
        "keys", "add", "--agent", f"{bot}:desk", "--user", "dana", "--role", "patient"
    )
    assert code == 0, err
    key = out.splitlines()[-1]
    assert key.startswith("ak_") and " " not in key and len(key) > 40
    store = sessions.SQLiteStore(tmp_path / "desk.db")
    table = sessions.KeyTable(store)
    principal = table.principal_for(key)
    assert principal is not None and principal.id == "dana"
    assert principal.roles == frozenset({"patient"})
    assert key.encode() not in (tmp_path / "desk.db").read_bytes()
    code, listed, _ = run("keys", "list", "--agent", f"{bot}:desk", "--json")
    (row,) = json.loads(listed)
    assert row["user"] == "dana" and row["roles"] == ["patient"] and row["revoked_at"] is None
    assert key not in listed
    code, out, _ = run("keys", "revoke", row["id"], "--agent", f"{bot}:desk")
    assert code == 0 and "revoked" in out
    assert table.principal_for(key) is None
    store.close()


def test_keys_in_a_file_of_their_own(tmp_path: Path) -> None:
    where = str(tmp_path / "keys.db")
    assert run("keys", "add", "--store", where, "--user", "x")[0] == 2  # no such file
    code, out, _ = run("keys", "add", "--store", where, "--create", "--user", "x", "--role", "a")
    assert code == 0 and out.splitlines()[-1].startswith("ak_")
    code, out, _ = run("keys", "list", "--store", where)
    assert code == 0 and "x" in out and "a" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["keys", "add", "--agent", "{bot}:bare", "--user", "x"], "has no store"),
        (["keys", "add", "--agent", "{bot}:desk"], "needs --user"),
        (["keys", "add", "--agent", "{bot}:desk", "--user", "a b"], "not a valid name"),
        (["keys", "revoke", "--agent", "{bot}:desk"], "ID or --user"),
        (["keys", "revoke", "abc", "--agent", "{bot}:desk"], "no working key abc"),
        (["keys", "list"], "--agent FILE.py:NAME or --store PATH"),
        (["serve", "{bot}:desk", "--auth", "oidc"], "needs --oidc-issuer URL"),
        (
            ["serve", "{bot}:desk", "--host", "0.0.0.0", "--trust-proxy-header", "X-User"],
            "no --trusted-proxy",
        ),
        (["serve", "{bot}:desk", "--auth", "keys", "--api-key", "long-enough-key"], "give one"),
        (["serve", "{bot}:desk", "--auth", "keys"], "deps=factory"),
        (["serve", "{bot}:bare", "--auth", "keys"], "store"),
        (["serve", "{bot}:desk", "--deps", "{bot}:nothing"], "no function 'nothing'"),
        (["serve", "{bot}:desk", "--trusted-proxy", "10.0.0.1"], "goes with --auth proxy"),
        (
            ["serve", "{bot}:desk", "--auth", "proxy", "--trusted-proxy", "proxy.example"],
            "address or a network",
        ),
    ],
)
def test_identity_usage_errors_are_one_line_with_no_traceback(
    bot: Path, argv: list[str], expected: str
) -> None:
    code, _, err = run(*(arg.format(bot=bot) for arg in argv))
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err and err.startswith("agentkit: error: ")
