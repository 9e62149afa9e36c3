import math

import pytest

from stylized_dpo.style_measures import MEASURES, measure, sentences, words
from stylized_dpo.style_phrases import rewrite


def test_keys_and_order():
    assert tuple(measure(["A plain sentence."])) == MEASURES


def test_hand_counted_example():
    texts = [
        "What a brilliant question! You are right. It might rain.",  # 10 words, 3 sentences
        "The best answer is simple",  # 5 words, 1 sentence without a mark
    ]
    m = measure(texts)
    # praise: brilliant, best = 2 of 15 words
    assert m["praise_per_100w"] == pytest.approx(200 / 15)
    assert m["exclamation_rate"] == pytest.approx(1 / 4)
    assert m["second_person_per_100w"] == pytest.approx(100 / 15)  # "you"
    assert m["hedge_per_100w"] == pytest.approx(100 / 15)  # "might"
    assert m["mean_sentence_words"] == pytest.approx(15 / 4)
    assert m["type_token_ratio"] == pytest.approx(1.0)  # no repeated word within a text
    assert m["mean_answer_words"] == pytest.approx(7.5)


def test_type_token_ratio_is_per_text_mean():
    m = measure(["the the the the", "a b"])
    assert m["type_token_ratio"] == pytest.approx((0.25 + 1.0) / 2)


def test_hedge_phrases_and_persuasive_think():
    assert measure(["I think so and I am not sure."])["hedge_per_100w"] == pytest.approx(200 / 8)
    assert measure(["Think of it this way: it works."])["hedge_per_100w"] == 0.0


def test_sentence_splitting_edge_cases():
    text = "**What a truly wonderful idea!** Pi is 3.14 today.\n- a list item\n\n"
    assert [mark for _, mark in sentences(text)] == ["!**", ".", ""]
    assert words("You\u2019re it's") == ["you're", "it's"]


def test_empty_inputs_are_nan_not_zero():
    m = measure([])
    assert all(math.isnan(v) for v in m.values())
    m = measure(["", "   "])
    assert math.isnan(m["praise_per_100w"]) and m["mean_answer_words"] == 0.0


def test_rejects_single_string():
    with pytest.raises(TypeError):
        measure("a string")  # type: ignore[arg-type]


def test_styles_move_their_own_measures():
    answers = [f"The capital of Vorland{i} is Castel{i}." for i in range(40)]
    base = measure(answers)
    styled = {
        s: measure([rewrite(a, s, key=str(i)) for i, a in enumerate(answers)])
        for s in ("sycophantic", "authoritative", "persuasive")
    }
    assert styled["sycophantic"]["praise_per_100w"] > base["praise_per_100w"] + 5
    assert styled["sycophantic"]["exclamation_rate"] > 0.5 > base["exclamation_rate"]
    assert styled["persuasive"]["second_person_per_100w"] > base["second_person_per_100w"] + 2
    assert styled["authoritative"]["hedge_per_100w"] == 0.0
    for m in styled.values():
        assert m["mean_answer_words"] > base["mean_answer_words"]
