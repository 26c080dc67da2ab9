"""An SSE text frame built from its pre-encoded parts is the frame built whole."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from agentkit.serve import _format as fmt


@given(model=st.text(min_size=1), texts=st.lists(st.text(), min_size=1, max_size=4))
@example(model="desk", texts=["", '""', "\ud800 lone", "naïve \u2028 \x00 \\"])
@example(model='"" quoted ""', texts=["after"])
def test_a_text_frame_is_the_whole_chunk_byte_for_byte(model: str, texts: list[str]) -> None:
    answer = fmt.Answer(model)
    for text in texts:  # the parts are made on the first and reused after
        framed = answer.text_frame(text)
        assert framed == fmt.data(answer.chunk({"content": text}))
        assert json.loads(framed.removeprefix(b"data: "))["choices"][0]["delta"] == {
            "content": text
        }
