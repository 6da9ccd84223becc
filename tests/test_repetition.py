"""The repetition guard: an answer whose end says one block of tokens again and again stops, with finish reason
"repetition"; short runs ("!!!", a ruler of dashes) and text that merely reuses words go on."""
import asyncio

import pytest
from conftest import model_or_skip

from wren.engine.engine import Engine, Request
from wren.engine.runtime.sampling import GREEDY, LOOP_MIN_TOKENS, SamplingParams, loop_block
from wren.engine.settings import Settings


def test_a_line_said_three_times_in_a_row_is_a_loop():
    line = list(range(100, 112))  # a 12-token line
    assert loop_block([1, 2, 3] + line * 3, 3) == 12
    assert loop_block([1, 2, 3] + line * 2, 3) == 0  # twice is not yet a loop
    assert loop_block(line * 3 + [7], 3) == 0  # the loop must be at the end
    assert loop_block(line * 3, 0) == 0  # off


def test_short_runs_are_not_loops():
    assert loop_block([5] * 3, 3) == 0
    assert loop_block([9, 9, 9, 9, 9, 9, 9, 9], 3) == 0
    assert loop_block([1] * 40 + [5] * 10, 3) == 0
    assert loop_block([5] * LOOP_MIN_TOKENS, 3) == 1  # but a token said 32 times in a row is one


def test_varied_text_is_not_a_loop():
    text = [(i * i * 37) % 1009 for i in range(600)]
    assert loop_block(text, 3) == 0


def test_loop_repeats_is_checked():
    with pytest.raises(ValueError, match="loop_repeats"):
        SamplingParams(loop_repeats=1).validated()
    assert GREEDY.loop_repeats == 0  # greedy runs compare with llama.cpp: no guard there


@pytest.mark.model
def test_a_looping_answer_stops_and_says_so():
    path = model_or_skip("SmolLM2-135M-Instruct")
    prompt = "Repeat after me.\n" + "I like apples and pears.\n" * 6
    guarded = SamplingParams(temperature=0.0, top_k=1, repeat_penalty=1.0, loop_repeats=3)

    async def run():
        engine = await Engine.open(path, Settings(context_length=512, batch_size=256))
        try:
            out = []
            for params in (guarded, GREEDY):
                async for ev in engine.generate(Request(text=prompt, sampling=params, max_new_tokens=160)):
                    pass
                out.append(ev)
            return out
        finally:
            await engine.close()

    stopped, unguarded = asyncio.run(run())
    assert unguarded.reason == "length" and unguarded.stats.generated_tokens == 160
    assert stopped.reason == "repetition"
    assert stopped.stats.generated_tokens < 80
    assert stopped.text.count("I like apples and pears.") >= 3
