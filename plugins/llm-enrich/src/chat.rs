//! The Chat Completions wire format (OpenAI's `POST /chat/completions`, also
//! served by Ollama, vLLM and LM Studio): the request body, and reading the
//! structured answer out of the response. Pure: no IO.

use serde_json::{Value, json};

/// The request body: a system message with the prompt, a user message with
/// the record's text, and `response_format` of type `json_schema` (strict),
/// so the model answers with one JSON document matching `schema`.
pub fn request_body(
    model: &str,
    system_prompt: &str,
    text: &str,
    schema_name: &str,
    schema: &Value,
    temperature: Option<f64>,
) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": text},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": true},
        },
    });
    if let (Some(temperature), Some(map)) = (temperature, body.as_object_mut()) {
        map.insert("temperature".into(), json!(temperature));
    }
    body
}

/// Why an answer could not be used. Every one is permanent for the record:
/// asking again would most likely give the same answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerError {
    /// The body has no `choices[0].message`.
    NoChoice,
    /// The model refused (`message.refusal`), with its explanation.
    Refused(String),
    /// `finish_reason` is `length` or `content_filter`: the content is cut.
    Incomplete(String),
    /// `message.content` is missing or not a string.
    NoContent,
    /// `message.content` is not JSON; the error and the content's start.
    NotJson(String),
}

impl AnswerError {
    /// A short stable code for the failure.
    pub fn code(&self) -> &'static str {
        match self {
            AnswerError::Refused(_) => "model_refused",
            AnswerError::Incomplete(_) => "model_answer_incomplete",
            AnswerError::NoChoice | AnswerError::NoContent | AnswerError::NotJson(_) => {
                "bad_model_answer"
            }
        }
    }
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerError::NoChoice => f.write_str("the answer has no `choices[0].message`"),
            AnswerError::Refused(why) => write!(f, "the model refused: {why}"),
            AnswerError::Incomplete(reason) => write!(
                f,
                "the model stopped early (finish_reason `{reason}`), so its JSON is incomplete"
            ),
            AnswerError::NoContent => {
                f.write_str("`choices[0].message.content` is missing or not a string")
            }
            AnswerError::NotJson(detail) => {
                write!(f, "`choices[0].message.content` is not JSON: {detail}")
            }
        }
    }
}

/// Reads the structured answer out of a Chat Completions response:
/// `choices[0].message.content` parsed as JSON, after checking
/// `message.refusal` and `finish_reason`.
pub fn parse_answer(response: &Value) -> Result<Value, AnswerError> {
    let choice = response
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or(AnswerError::NoChoice)?;
    let message = choice.get("message").ok_or(AnswerError::NoChoice)?;
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str)
        && !refusal.is_empty()
    {
        return Err(AnswerError::Refused(truncate(refusal, 200)));
    }
    if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str)
        && (reason == "length" || reason == "content_filter")
    {
        return Err(AnswerError::Incomplete(reason.to_owned()));
    }
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .ok_or(AnswerError::NoContent)?;
    serde_json::from_str(content).map_err(|err| {
        AnswerError::NotJson(format!("{err}; it begins {:?}", truncate(content, 60)))
    })
}

/// At most `max` characters of `text`, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn response(message: Value, finish_reason: &str) -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "logprobs": null,
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
        })
    }

    #[test]
    fn the_request_carries_the_model_messages_and_strict_schema() {
        let schema = json!({"type": "object"});
        let body = request_body("gpt-4o-mini", "Be brief.", "I love it", "s", &schema, None);
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": "I love it"})
        );
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["response_format"]["json_schema"]["name"], "s");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(body["response_format"]["json_schema"]["schema"], schema);
        assert!(body.get("temperature").is_none());
        let body = request_body("m", "p", "t", "s", &schema, Some(0.0));
        assert_eq!(body["temperature"], 0.0);
    }

    #[test]
    fn reads_the_content_as_json() {
        let message = json!({"role": "assistant", "content": "{\"label\":\"positive\",\"score\":0.9}",
                             "refusal": null});
        let answer = parse_answer(&response(message, "stop")).unwrap();
        assert_eq!(answer, json!({"label": "positive", "score": 0.9}));
    }

    #[test]
    fn refusals_truncation_and_garbage_are_errors() {
        let refused =
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
        let err = parse_answer(&response(refused, "stop")).unwrap_err();
        assert_eq!(err.code(), "model_refused");
        assert!(err.to_string().contains("I can't help"), "{err}");

        let cut = json!({"role": "assistant", "content": "{\"label\":\"pos"});
        let err = parse_answer(&response(cut, "length")).unwrap_err();
        assert_eq!(err, AnswerError::Incomplete("length".into()));

        let garbage = json!({"role": "assistant", "content": "Sure! The sentiment is positive."});
        let err = parse_answer(&response(garbage, "stop")).unwrap_err();
        assert_eq!(err.code(), "bad_model_answer");
        assert!(err.to_string().contains("Sure! The sentiment"), "{err}");

        assert_eq!(
            parse_answer(&json!({"choices": []})),
            Err(AnswerError::NoChoice)
        );
        let no_content = json!({"role": "assistant", "content": 3});
        assert_eq!(
            parse_answer(&response(no_content, "stop")),
            Err(AnswerError::NoContent)
        );
    }
}
