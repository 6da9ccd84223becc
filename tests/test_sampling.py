"""Samplers on hand-made distributions: what each filter keeps, the draw's frequencies, seeds."""
import numpy as np
import pytest

from wren.engine.runtime.sampling import (GREEDY, NonFiniteLogitsError, Sampler, SamplingParams,
                                          apply_repetition_penalty, min_p_cut, softmax, top_k_candidates, top_p_cut)

PROBS = np.array([0.5, 0.3, 0.15, 0.05])
LOGITS = np.log(PROBS).astype(np.float32)


def draws(params, logits=LOGITS, n=4000, history=()):
    s = Sampler(params)
    return np.bincount([s.sample(logits, history) for _ in range(n)], minlength=len(logits))


def test_greedy_takes_the_argmax():
    logits = np.array([0.1, 3.0, 2.9, -1.0], dtype=np.float32)
    assert Sampler(GREEDY).sample(logits) == 1


def test_filters_keep_what_they_promise():
    assert top_p_cut(PROBS, 0.8) == 2 and top_p_cut(PROBS, 0.81) == 3 and top_p_cut(PROBS, 1.0) == 4
    assert min_p_cut(PROBS, 0.2) == 3 and min_p_cut(PROBS, 0.99) == 1 and min_p_cut(PROBS, 0.0) == 4
    ids, vals = top_k_candidates(np.array([1.0, 5.0, 3.0, 4.0], dtype=np.float32), 2)
    assert list(ids) == [1, 3] and list(vals) == [5.0, 4.0]
    counts = draws(SamplingParams(temperature=1.0, top_k=2, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=1))
    assert counts[2] == counts[3] == 0
    counts = draws(SamplingParams(temperature=1.0, top_k=0, top_p=0.8, min_p=0.0, repeat_penalty=1.0, seed=2))
    assert counts[2] == counts[3] == 0 and counts[0] > counts[1] > 0
    counts = draws(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.2, repeat_penalty=1.0, seed=3))
    assert counts[3] == 0 and counts[2] > 0


def test_frequencies_follow_the_distribution():
    n = 20000
    counts = draws(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=4), n=n)
    sigma = np.sqrt(n * PROBS * (1 - PROBS))
    assert (np.abs(counts - n * PROBS) < 5 * sigma).all()


def test_temperature_sharpens_and_flattens():
    cold = draws(SamplingParams(temperature=0.2, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=5))
    hot = draws(SamplingParams(temperature=3.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=5))
    assert cold[0] > hot[0] and cold[3] < hot[3]


def test_repetition_penalty():
    logits = np.array([2.0, -2.0, 1.0], dtype=np.float32)
    out = apply_repetition_penalty(logits, [0, 1, 1, 7, -3], 2.0)
    assert list(out) == [1.0, -4.0, 1.0] and list(logits) == [2.0, -2.0, 1.0]
    s = Sampler(SamplingParams(temperature=0.0, repeat_penalty=3.0))
    assert s.sample(np.array([2.0, 1.0], dtype=np.float32), history=[0]) == 1


def test_same_seed_same_tokens():
    rng = np.random.default_rng(0)
    logits = [rng.standard_normal(50000).astype(np.float32) for _ in range(30)]
    p = SamplingParams(temperature=0.9, top_k=0, top_p=0.9, min_p=0.0, seed=1234)
    run = lambda: [Sampler(p).sample(lg) for lg in logits]  # noqa: E731
    a, b = run(), run()
    assert a == b
    other = [Sampler(SamplingParams(temperature=0.9, top_k=0, top_p=0.9, min_p=0.0, seed=99)).sample(lg)
             for lg in logits]
    assert other != a


def test_wide_vocabulary_nucleus_matches_the_full_sort():
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal(262144) * 3).astype(np.float32)
    probs = softmax(logits)
    order = np.argsort(-probs)
    n_keep = top_p_cut(probs[order], 0.5)
    kept = set(order[:n_keep].tolist())
    s = Sampler(SamplingParams(temperature=1.0, top_k=0, top_p=0.5, min_p=0.0, repeat_penalty=1.0, seed=7))
    assert all(s.sample(logits) in kept for _ in range(200))


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_k=-2), dict(top_p=0.0), dict(min_p=1.0),
                                 dict(repeat_penalty=0.0)])
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError, match="invalid sampling settings"):
        Sampler(SamplingParams(**bad))


@pytest.mark.parametrize("bad", [[0.1, np.nan, 2.0, 1.0], [0.1, np.inf, 2.0, 1.0], [-np.inf] * 4,
                                 [np.nan] * 4])
@pytest.mark.parametrize("params", [GREEDY, SamplingParams(seed=1)])
def test_nonfinite_logits_raise_a_typed_error(bad, params):
    with pytest.raises(NonFiniteLogitsError, match="non-finite logits"):
        Sampler(params).sample(np.array(bad, dtype=np.float32))


def test_minus_infinity_marks_a_forbidden_token():
    """A constraint masks tokens with -inf: the others are still drawn."""
    logits = np.array([-np.inf, 1.0, -np.inf, 0.5], dtype=np.float32)
    assert Sampler(GREEDY).sample(logits) == 1
    assert set(draws(SamplingParams(temperature=1.0, seed=3), logits, n=200)[[0, 2]]) == {0}
