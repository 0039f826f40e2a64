"""Training and evaluation must build the same classification prompt and read the same label
from the same answer: both go through openrlhf.knowrl.prompts, with the same answer prefill."""

import pytest

from evaluation.engine import Classifier
from openrlhf.knowrl.config import KnowRLConfig
from openrlhf.knowrl.prompts import (
    DEFAULT_PROMPTS_DIR,
    build_classification_prompt,
    chat_prompt,
    load_templates,
    parse_answer,
    parse_label,
)

COMPLETIONS = [" feasible\nReason: simple sum.", " Infeasible", " impossible to know", "infeasible.", " maybe",
               "", " feasible or infeasible", " not feasible", " **infeasible**\nReason: needs the web."]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from tiny_model import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("tiny_parse") / "m")
    return Classifier(path, seed=0, use_gpu=False, answer_prefix=KnowRLConfig().answer_prefix)


def test_same_prompt_in_training_and_evaluation(classifier):
    templates = load_templates(DEFAULT_PROMPTS_DIR)
    task = "What is 17 + 25?"
    training_prompt = chat_prompt(classifier.tokenizer, build_classification_prompt(templates, task),
                                  KnowRLConfig().answer_prefix)
    assert classifier.classification_prompts(templates, [task]) == [training_prompt]
    assert training_prompt.endswith("Label:")


def test_same_label_in_training_and_evaluation(classifier):
    prefix = KnowRLConfig().answer_prefix
    for completion in COMPLETIONS:
        training_label = parse_answer(completion, prefix)
        sample = classifier.sample(completion)
        assert sample["label"] == training_label, completion
        # evaluation stores the prefixed text, so --rescore reparses to the same label
        assert parse_label(sample["text"]) == training_label, completion
    assert [parse_answer(c, prefix) for c in COMPLETIONS[:4]] == ["feasible", "infeasible", "infeasible",
                                                                  "infeasible"]
