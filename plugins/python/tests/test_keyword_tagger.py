"""Unit tests for keyword-tagger's configuration and matching (in-process)."""

import pytest
from keyword_tagger import KeywordTagger, contains_phrase, words_of
from switchyard_plugin import Failure, Record


def configured(**config):
    tagger = KeywordTagger()
    config.setdefault("keywords", {"urgent": ["asap", "outage"], "billing": ["invoice", "credit card"]})
    assert tagger.configure(config, "tagger") == []
    return tagger


def fields(errors):
    return sorted(error.field for error in errors)


def test_words_and_phrases():
    assert words_of("Outage! Pay the INVOICE, ASAP.") == ["outage", "pay", "the", "invoice", "asap"]
    assert contains_phrase(["my", "credit", "card"], ["credit", "card"])
    assert not contains_phrase(["credit", "union", "card"], ["credit", "card"])
    assert not contains_phrase(["outages"], ["outage"])


def test_tags_are_added_sorted_and_merged():
    tagger = configured()
    record = tagger.enrich(Record(id="1", payload={"text": "Outage: my credit card invoice bounced", "tags": ["vip"]}))
    assert record.payload["tags"] == ["billing", "urgent", "vip"]


def test_no_match_gives_an_empty_list_and_keeps_the_rest():
    record = configured().enrich(Record(id="1", payload={"text": "all good", "other": 1}))
    assert record.payload == {"text": "all good", "other": 1, "tags": []}


def test_text_fields_and_output_field_options():
    tagger = configured(text_fields=["title", "issue.body", "labels"], output_field="topics")
    payload = {"title": "hello", "issue": {"body": "please fix ASAP"}, "labels": ["invoice"], "text": "outage"}
    assert tagger.enrich(Record(id="1", payload=payload)).payload["topics"] == ["billing", "urgent"]


def test_phrases_do_not_span_fields():
    tagger = configured(text_fields=["a", "b"])
    assert tagger.enrich(Record(id="1", payload={"a": "credit", "b": "card"})).payload["tags"] == []


@pytest.mark.parametrize("payload, kind", [([1, 2], "an array"), ("text", "a string"), (None, "null"), (3, "a number")])
def test_non_object_payload_is_a_permanent_failure_saying_why(payload, kind):
    with pytest.raises(Failure) as err:
        configured().enrich(Record(id="rec-9", payload=payload))
    assert not err.value.retryable
    assert err.value.code == "payload_not_object"
    assert "'rec-9'" in err.value.message and kind in err.value.message and "not a JSON object" in err.value.message


def test_existing_output_field_of_the_wrong_type_is_a_failure():
    with pytest.raises(Failure) as err:
        configured().enrich(Record(id="1", payload={"text": "x", "tags": "urgent"}))
    assert "'tags'" in err.value.message


def test_every_config_problem_is_reported_with_its_field():
    errors = KeywordTagger().configure(
        {
            "keywords": {"urgent": [], "billing": ["ok", 7, "!!"], "x": "asap"},
            "text_fields": ["", "a..b"],
            "output_field": 3,
            "colour": "blue",
        },
        "tagger",
    )
    assert fields(errors) == [
        "colour",
        "keywords.billing[1]",
        "keywords.billing[2]",
        "keywords.urgent",
        "keywords.x",
        "output_field",
        "text_fields[0]",
        "text_fields[1]",
    ]


@pytest.mark.parametrize("keywords", [None, {}, ["a"], "a"])
def test_keywords_are_required(keywords):
    config = {} if keywords is None else {"keywords": keywords}
    assert fields(KeywordTagger().configure(config, "t")) == ["keywords"]


def test_a_rejected_config_does_not_replace_the_previous_one():
    tagger = configured()
    assert tagger.configure({"keywords": {}}, "t") != []
    assert tagger.enrich(Record(id="1", payload={"text": "asap"})).payload["tags"] == ["urgent"]
