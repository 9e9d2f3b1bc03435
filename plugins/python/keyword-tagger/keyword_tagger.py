"""keyword-tagger: a Switchyard enrichment plugin that tags records by the words in their text.

Configuration (the ``config`` table in plugins.toml; see README.md)::

    keywords = { urgent = ["asap", "outage"], billing = ["invoice", "refund"] }
    text_fields = ["title", "body"]     # default ["text"]; dotted paths reach nested objects
    output_field = "tags"               # default "tags"

A keyword matches when its words appear in the text as whole words, in
order, ignoring case ("Outage!" matches "outage"; "outages" does not). The
plugin adds the matching tags, merged with any already in ``output_field``
and sorted, to the payload.
"""

import logging
import re
from typing import Any, Dict, List, Sequence, Tuple

from switchyard_plugin import TRACE, ConfigError, Enricher, Failure, Record, serve

logger = logging.getLogger("keyword-tagger")

_WORD = re.compile(r"\w+", re.UNICODE)
_KNOWN_KEYS = ("keywords", "text_fields", "output_field")


def words_of(text: str) -> List[str]:
    """The text's words, case-folded, in order."""
    return [word.casefold() for word in _WORD.findall(text)]


def contains_phrase(words: Sequence[str], phrase: Sequence[str]) -> bool:
    """True when ``phrase`` occurs as a contiguous run in ``words``."""
    if not phrase or len(phrase) > len(words):
        return False
    first = phrase[0]
    for start, word in enumerate(words[: len(words) - len(phrase) + 1]):
        if word == first and list(words[start : start + len(phrase)]) == list(phrase):
            return True
    return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class KeywordTagger(Enricher):
    """Tags records whose text contains configured keywords."""

    name = "keyword-tagger"
    version = "0.1.0"
    description = "Adds tags to a record's payload when its text fields contain configured keywords."
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["keywords"],
        "properties": {
            "keywords": {
                "description": "Tag name -> words or phrases that earn the tag (whole words, case-insensitive).",
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": "\\w"},
                },
            },
            "text_fields": {
                "description": "Payload fields to search; dotted paths reach nested objects.",
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
                "default": ["text"],
            },
            "output_field": {
                "description": "Top-level payload field that receives the sorted list of tags.",
                "type": "string",
                "minLength": 1,
                "default": "tags",
            },
        },
    }

    def __init__(self) -> None:
        self.keywords: List[Tuple[str, List[List[str]]]] = []
        self.text_fields: List[List[str]] = [["text"]]
        self.output_field = "tags"

    def configure(self, config: Dict[str, Any], instance_name: str) -> List[ConfigError]:
        errors: List[ConfigError] = []
        for key in sorted(config):
            if key not in _KNOWN_KEYS:
                errors.append(ConfigError(key, f"unknown key; expected one of {', '.join(_KNOWN_KEYS)}"))

        keywords: List[Tuple[str, List[List[str]]]] = []
        raw_keywords = config.get("keywords")
        if raw_keywords is None:
            errors.append(ConfigError("keywords", "required: a table of tag = [words...]"))
        elif not isinstance(raw_keywords, dict) or not raw_keywords:
            what = "an empty table" if isinstance(raw_keywords, dict) else _json_type(raw_keywords)
            errors.append(ConfigError("keywords", f"must be a non-empty table of tag = [words...], not {what}"))
        else:
            for tag in sorted(raw_keywords):
                words = raw_keywords[tag]
                field = f"keywords.{tag}"
                if not tag.strip():
                    errors.append(ConfigError(field, "tag names must not be empty"))
                    continue
                if not isinstance(words, list) or not words:
                    what = "an empty array" if isinstance(words, list) else _json_type(words)
                    errors.append(ConfigError(field, f"must be a non-empty array of words, not {what}"))
                    continue
                phrases = []
                for index, word in enumerate(words):
                    if not isinstance(word, str):
                        errors.append(ConfigError(f"{field}[{index}]", f"must be a string, not {_json_type(word)}"))
                    elif not words_of(word):
                        errors.append(ConfigError(f"{field}[{index}]", f"{word!r} contains no word characters"))
                    else:
                        phrases.append(words_of(word))
                keywords.append((tag, phrases))

        text_fields = [["text"]]
        if "text_fields" in config:
            raw_fields = config["text_fields"]
            if not isinstance(raw_fields, list) or not raw_fields:
                what = "an empty array" if isinstance(raw_fields, list) else _json_type(raw_fields)
                errors.append(ConfigError("text_fields", f"must be a non-empty array of field names, not {what}"))
            else:
                text_fields = []
                for index, name in enumerate(raw_fields):
                    if not isinstance(name, str) or not name or any(not part for part in name.split(".")):
                        errors.append(
                            ConfigError(
                                f"text_fields[{index}]",
                                f'must be a field name such as "body" or "issue.title", not {name!r}',
                            )
                        )
                    else:
                        text_fields.append(name.split("."))

        output_field = "tags"
        if "output_field" in config:
            raw_output = config["output_field"]
            if not isinstance(raw_output, str) or not raw_output:
                errors.append(ConfigError("output_field", f"must be a non-empty string, not {raw_output!r}"))
            else:
                output_field = raw_output

        if not errors:
            self.keywords, self.text_fields, self.output_field = keywords, text_fields, output_field
            logger.info(
                "keyword-tagger configured",
                extra={
                    "fields": {
                        "instance": instance_name,
                        "tags": [tag for tag, _ in keywords],
                        "text_fields": [".".join(path) for path in text_fields],
                        "output_field": output_field,
                    }
                },
            )
        return errors

    def enrich(self, record: Record) -> Record:
        payload = record.payload
        if not isinstance(payload, dict):
            raise Failure.permanent(
                f"record {record.id!r}: the payload is {_json_type(payload)}, not a JSON object, "
                f"so keyword-tagger has nowhere to put {self.output_field!r}",
                code="payload_not_object",
            )
        existing = payload.get(self.output_field, [])
        if existing is None:
            existing = []
        if not isinstance(existing, list) or not all(isinstance(tag, str) for tag in existing):
            raise Failure.permanent(
                f"record {record.id!r}: the payload's {self.output_field!r} is {_json_type(existing)} "
                "that is not an array of strings, so keyword-tagger cannot add tags to it",
                code="output_field_not_tags",
            )
        words = []
        for text in self._texts(payload):
            # A separator that is not a word keeps phrases from spanning two fields.
            words.extend(words_of(text))
            words.append("\x00")
        matched = {tag for tag, phrases in self.keywords if any(contains_phrase(words, phrase) for phrase in phrases)}
        payload[self.output_field] = sorted(set(existing) | matched)
        logger.log(TRACE, "record tagged", extra={"fields": {"record_id": record.id, "tags": sorted(matched)}})
        return record

    def _texts(self, payload: Dict[str, Any]) -> List[str]:
        texts = []
        for path in self.text_fields:
            value: Any = payload
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, list):
                texts.extend(item for item in value if isinstance(item, str))
        return texts


if __name__ == "__main__":
    serve(KeywordTagger())
