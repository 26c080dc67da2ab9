"""One name per option: the renamed spellings, the old ones that warn, and the typed forms.

``mypy --strict`` checks this file too: the ``assert_type`` lines fail the type check (not
the test run) when an overload of ``tool`` loses a keyword.
"""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
import warnings
from typing import Any, assert_type

import pytest

import agentkit
from agentkit import PendingCall, RunLimits, tool
from agentkit._errors import RENAMED
from agentkit._loop_settings import LoopSettings

OLD_NAMES = sorted(RENAMED)


def refund(order_id: int, amount: float) -> str:
    """Refund part of an order.

    Args:
        order_id: The order number.
        amount: How much to give back.
    """
    return f"refunded {amount} on {order_id}"


def test_the_function_form_of_tool_takes_every_keyword_of_the_decorator_form() -> None:
    direct = tool(refund, side_effects=True, idempotent=True, timeout=5.0)
    decorated = tool(side_effects=True, idempotent=True)(refund)
    # the parameters and the return type survive both forms (mypy checks these lines)
    assert_type(direct(1042, 5.0), str)
    assert_type(decorated(1042, 5.0), str)
    assert direct.side_effects and direct.idempotent and direct.timeout == 5.0
    assert decorated.side_effects and decorated.idempotent
    assert direct.parameters == decorated.parameters


@pytest.mark.parametrize("old", OLD_NAMES)
def test_an_old_exception_name_warns_with_the_new_one_and_is_the_same_class(old: str) -> None:
    new = RENAMED[old]
    assert new == f"{old}Error"
    with pytest.warns(DeprecationWarning, match=f"agentkit.{old} is renamed {new}") as caught:
        found = getattr(agentkit, old)
    assert found is getattr(agentkit, new)
    assert issubclass(found, agentkit.RunError)
    assert caught[0].filename == __file__  # points at the line that used the old name
    with pytest.warns(DeprecationWarning, match=f"agentkit._errors.{old} is renamed {new}"):
        found_private = getattr(importlib.import_module("agentkit._errors"), old)
    assert found_private is found


def test_an_old_exception_name_warns_at_every_use_and_stays_out_of_the_public_names() -> None:
    for _ in range(2):  # never cached in the module, so a later use still warns
        with pytest.warns(DeprecationWarning):
            agentkit.MaxTurnsExceeded  # type: ignore[attr-defined]  # noqa: B018
    assert not set(OLD_NAMES) & set(getattr(agentkit, "__all__"))  # noqa: B009
    assert not set(OLD_NAMES) & set(agentkit._errors.__all__)


def test_an_old_exception_name_in_a_from_import_warns_and_still_catches() -> None:
    # In a fresh interpreter: what a user's old code does, start to end.
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "try:\n"
        "    from agentkit import MaxTurnsExceeded\n"
        "except DeprecationWarning as w:\n"
        "    print('warned:', w)\n"
        "warnings.simplefilter('ignore')\n"
        "from agentkit import MaxTurnsExceeded, MaxTurnsExceededError\n"
        "try:\n"
        "    raise MaxTurnsExceededError('spent')\n"
        "except MaxTurnsExceeded as e:\n"
        "    print('caught:', type(e).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "warned: agentkit.MaxTurnsExceeded is renamed MaxTurnsExceededError; import "
        "MaxTurnsExceededError instead (the old name will be removed)",
        "caught: MaxTurnsExceededError",
    ]


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="MaxTurnsExceededErrorr"):
        agentkit.MaxTurnsExceededErrorr  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match="Nope"):
        importlib.import_module("agentkit._errors").Nope  # noqa: B018


def test_agentkit_instrument_is_tracing_instrument_and_warns() -> None:
    # In a fresh interpreter: the old name loads the tracing ring, and says the new one.
    code = (
        "import sys, warnings\n"
        "import agentkit\n"
        "assert 'instrument' not in agentkit.__all__ and 'agentkit.tracing' not in sys.modules\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    old = agentkit.instrument\n"
        "import agentkit.tracing\n"
        "assert old is agentkit.tracing.instrument\n"
        "print(caught[0].category.__mro__[1].__name__, caught[0].lineno, caught[0].message)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "DeprecationWarning 6 agentkit.instrument is deprecated: use agentkit.tracing.instrument "
        "(import agentkit.tracing); the old name will be removed before 0.1.0"
    )


def test_pending_call_id_is_call_id_and_the_old_name_warns() -> None:
    call = PendingCall("call_1", "refund", '{"order_id": 1, "amount": 2}', digest="d")
    assert call.call_id == "call_1"
    with pytest.warns(DeprecationWarning, match=r"PendingCall.id is renamed PendingCall.call_id"):
        assert call.id == "call_1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the JSON form keeps the wire format's key
        assert call.to_dict() == {
            "id": "call_1",
            "name": "refund",
            "arguments": '{"order_id": 1, "amount": 2}',
            "digest": "d",
            "path": [],
            "via": [],
            "key": "call_1",
        }


def test_the_loop_settings_take_their_limit_defaults_from_run_limits() -> None:
    settings = LoopSettings("m")
    defaults = RunLimits()
    for field in dataclasses.fields(RunLimits):
        if hasattr(settings, field.name):
            assert getattr(settings, field.name) == getattr(defaults, field.name), field.name


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_turns", 0),
        ("max_tool_calls", True),
        ("max_tool_output_chars", 0),
        ("max_repeated_calls", -1),
        ("max_tool_failures", 1.5),
        ("max_output_retries", None),
        ("tool_timeout", float("nan")),
        ("run_timeout", 0),
    ],
)
def test_a_limit_is_refused_with_the_same_message_by_the_record_and_the_loop(
    option: str, value: Any
) -> None:
    with pytest.raises(agentkit.ConfigurationError) as by_record:
        RunLimits(**{option: value})
    with pytest.raises(agentkit.ConfigurationError) as by_loop:
        LoopSettings("m", **{option: value})
    assert str(by_record.value) == str(by_loop.value)
    assert str(by_record.value).startswith(option)


def test_the_mcp_error_that_lacked_the_suffix_is_renamed_the_same_way() -> None:
    pytest.importorskip("mcp")
    mcp = importlib.import_module("agentkit.mcp")
    errors = importlib.import_module("agentkit.mcp._errors")
    new = mcp.MCPServerExitedError
    assert issubclass(new, mcp.MCPConnectionError)
    for module, owner in ((mcp, "agentkit.mcp"), (errors, "agentkit.mcp._errors")):
        with pytest.warns(
            DeprecationWarning, match=f"{owner}.MCPServerExited is renamed MCPServerExitedError"
        ) as caught:
            assert module.MCPServerExited is new
        assert caught[0].filename == __file__
        assert "MCPServerExited" not in module.__all__
