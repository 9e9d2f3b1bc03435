//! The poll checkpoint: per survey, the page the current walk reached and
//! the high-water marks that decide which responses a later walk emits.
//!
//! The v1 Management API lists a survey's responses newest first with
//! `skip`/`limit` and has no "updated since" filter, so each poll cycle
//! walks every page of every survey. The first walk (the backfill) emits
//! everything; later walks emit the responses whose `updatedAt` is at or
//! after the highest `updatedAt` seen in the walk *before* the previous
//! one. One walk of slack: a response updated while the previous walk was
//! under way may carry an older `updatedAt` than that walk's highest, but
//! never older than anything seen in the walk before it (which had ended
//! before the update). Emitting a response twice is harmless: the hub
//! stores an unchanged record without an event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_plugin_sdk::PluginError;
use switchyard_plugin_sdk::http::PagePosition;

use crate::response::parse_time;

/// The whole checkpoint, stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The poll cycle in progress: every survey is walked once per cycle.
    pub cycle: u64,
    /// Each survey's state, by survey id.
    pub surveys: BTreeMap<String, SurveyState>,
}

/// One survey's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SurveyState {
    /// The cycle whose walk of this survey finished last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_cycle: Option<u64>,
    /// The next page of the walk in progress (`None`: the first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<PagePosition>,
    /// Responses updated before this are not emitted again (`None`: all are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit_from: Option<String>,
    /// The highest `updatedAt` of the last finished walk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_walk_max: Option<String>,
    /// The highest `updatedAt` seen so far in the walk in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_max: Option<String>,
}

impl Checkpoint {
    /// Reads a stored checkpoint (`None`: start from scratch).
    ///
    /// # Errors
    /// A permanent `bad_checkpoint` error when the bytes are not one.
    pub fn parse(bytes: Option<&[u8]>) -> Result<Checkpoint, PluginError> {
        match bytes {
            None => Ok(Checkpoint::default()),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|err| {
                PluginError::permanent(format!(
                    "formbricks: the stored checkpoint is not this plugin's: {err}"
                ))
                .with_code("bad_checkpoint")
            }),
        }
    }

    /// The checkpoint as JSON bytes.
    ///
    /// # Errors
    /// Never in practice (the state is plain data).
    pub fn to_bytes(&self) -> Result<Vec<u8>, PluginError> {
        serde_json::to_vec(self)
            .map_err(|err| PluginError::permanent(format!("formbricks: checkpoint: {err}")))
    }

    /// Starts a new cycle when every one of `surveys` finished its walk in
    /// the current one; forgets surveys no longer listed.
    pub fn begin(&mut self, surveys: &[String]) {
        self.surveys.retain(|id, _| surveys.contains(id));
        let cycle = self.cycle;
        if !surveys.is_empty()
            && surveys.iter().all(|id| {
                self.surveys
                    .get(id)
                    .is_some_and(|state| state.done_cycle == Some(cycle))
            })
        {
            self.cycle += 1;
        }
    }

    /// True when `survey` still has to be walked in this cycle.
    pub fn pending(&self, survey: &str) -> bool {
        self.surveys
            .get(survey)
            .is_none_or(|state| state.done_cycle != Some(self.cycle))
    }

    /// The state of `survey`, created empty when new.
    pub fn survey(&mut self, survey: &str) -> &mut SurveyState {
        self.surveys.entry(survey.to_owned()).or_default()
    }
}

impl SurveyState {
    /// Notes a response's `updatedAt`; returns whether to emit it.
    pub fn observe(&mut self, updated_at: Option<&str>) -> bool {
        let Some(updated) = updated_at.filter(|text| parse_time(text).is_some()) else {
            // No usable timestamp: always emit (the hub skips unchanged ones).
            return true;
        };
        if later(updated, self.walk_max.as_deref()) {
            self.walk_max = Some(updated.to_owned());
        }
        match self.emit_from.as_deref().and_then(parse_time) {
            None => true,
            Some(from) => parse_time(updated).is_none_or(|time| time >= from),
        }
    }

    /// Ends the walk in `cycle`: shifts the high-water marks and rewinds.
    pub fn finish_walk(&mut self, cycle: u64) {
        self.done_cycle = Some(cycle);
        self.next = None;
        let last = self.last_walk_max.take();
        let walk = self.walk_max.take();
        if let Some(last) = &last {
            self.emit_from = Some(last.clone());
        }
        self.last_walk_max = walk.or(last);
    }
}

/// True when `candidate` is later than `current` (or `current` is unset).
fn later(candidate: &str, current: Option<&str>) -> bool {
    match (parse_time(candidate), current.and_then(parse_time)) {
        (Some(candidate), Some(current)) => candidate > current,
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const T1: &str = "2024-04-23T08:00:00.000Z";
    const T2: &str = "2024-04-23T09:00:00.000Z";
    const T3: &str = "2024-04-23T10:00:00.000Z";

    #[test]
    fn cycles_advance_once_every_survey_is_done() {
        let surveys = vec!["a".to_owned(), "b".to_owned()];
        let mut checkpoint = Checkpoint::default();
        checkpoint.begin(&surveys);
        assert_eq!(checkpoint.cycle, 0);
        checkpoint.survey("a").finish_walk(0);
        checkpoint.begin(&surveys);
        assert_eq!(checkpoint.cycle, 0, "b is still pending");
        assert!(!checkpoint.pending("a") && checkpoint.pending("b"));
        checkpoint.survey("b").finish_walk(0);
        checkpoint.begin(&surveys);
        assert_eq!(checkpoint.cycle, 1);
        assert!(checkpoint.pending("a") && checkpoint.pending("b"));
    }

    #[test]
    fn later_walks_emit_what_changed_since_the_walk_before_last() {
        let mut state = SurveyState::default();
        // Walk 1 (backfill): everything.
        assert!(state.observe(Some(T1)) && state.observe(Some(T2)));
        state.finish_walk(0);
        // Walk 2: still everything (no walk before the last yet).
        assert!(state.observe(Some(T1)));
        state.finish_walk(1);
        // Walk 3: only what is at or after walk 1's highest (T2).
        assert!(!state.observe(Some(T1)));
        assert!(state.observe(Some(T2)));
        assert!(state.observe(Some(T3)));
        assert!(state.observe(None), "no timestamp: emitted");
    }

    #[test]
    fn the_checkpoint_round_trips_and_rejects_garbage() {
        let mut checkpoint = Checkpoint::default();
        checkpoint.survey("s").next =
            Some(serde_json::from_str(r#"{"kind":"offset","offset":20}"#).unwrap());
        let bytes = checkpoint.to_bytes().unwrap();
        assert_eq!(Checkpoint::parse(Some(&bytes)).unwrap(), checkpoint);
        let err = Checkpoint::parse(Some(b"17")).unwrap_err();
        assert_eq!(err.code(), Some("bad_checkpoint"));
    }
}
