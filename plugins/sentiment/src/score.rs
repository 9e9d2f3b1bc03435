//! Lexicon-based scoring: sum the valence of every known word, flipping the
//! sign of a word preceded (within two words) by a negator such as "not".

use crate::lexicon::LEXICON;

/// The result for one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// The sum of the valences of the words found (negated where negated).
    pub score: i64,
    /// `score` divided by the number of words (0 for no words).
    pub comparative: f64,
    /// How many words the text had.
    pub words: usize,
}

impl Score {
    /// `"positive"`, `"negative"` or `"neutral"`, from the sign of `score`.
    pub fn label(&self) -> &'static str {
        match self.score {
            score if score > 0 => "positive",
            score if score < 0 => "negative",
            _ => "neutral",
        }
    }
}

const NEGATORS: &[&str] = &[
    "aint",
    "aren't",
    "arent",
    "can't",
    "cannot",
    "cant",
    "couldn't",
    "couldnt",
    "didn't",
    "didnt",
    "doesn't",
    "doesnt",
    "don't",
    "dont",
    "hardly",
    "isn't",
    "isnt",
    "neither",
    "never",
    "no",
    "nobody",
    "none",
    "nor",
    "not",
    "nothing",
    "shouldn't",
    "shouldnt",
    "wasn't",
    "wasnt",
    "weren't",
    "werent",
    "without",
    "won't",
    "wont",
    "wouldn't",
    "wouldnt",
];

/// How many words before a sentiment word a negator still applies ("not very good").
const NEGATION_WINDOW: usize = 2;

fn valence(word: &str) -> Option<i8> {
    LEXICON
        .binary_search_by(|(entry, _)| (*entry).cmp(word))
        .ok()
        .map(|index| LEXICON[index].1)
}

/// Scores `text`. Words are runs of letters, digits and apostrophes, compared
/// in lower case; sentence punctuation ends a negation.
pub fn score_text(text: &str) -> Score {
    let mut score: i64 = 0;
    let mut words = 0usize;
    let mut since_negator: Option<usize> = None;
    let mut word = String::new();
    let flush = |word: &mut String,
                 since_negator: &mut Option<usize>,
                 words: &mut usize,
                 score: &mut i64| {
        if word.is_empty() {
            return;
        }
        let token = word.trim_matches('\'');
        if !token.is_empty() {
            *words += 1;
            if NEGATORS.contains(&token) {
                *since_negator = Some(0);
            } else {
                if let Some(value) = valence(token) {
                    let negated = since_negator.is_some_and(|distance| distance < NEGATION_WINDOW);
                    let value = i64::from(value);
                    *score += if negated { -value } else { value };
                }
                *since_negator = since_negator.map(|distance| distance + 1);
            }
        }
        word.clear();
    };
    for ch in text.chars() {
        if ch.is_alphanumeric() || ch == '\'' || ch == '\u{2019}' {
            let ch = if ch == '\u{2019}' { '\'' } else { ch };
            word.extend(ch.to_lowercase());
        } else {
            flush(&mut word, &mut since_negator, &mut words, &mut score);
            if matches!(ch, '.' | '!' | '?' | ';' | ',' | '\n') {
                since_negator = None;
            }
        }
    }
    flush(&mut word, &mut since_negator, &mut words, &mut score);
    #[allow(clippy::cast_precision_loss)]
    let comparative = if words == 0 {
        0.0
    } else {
        score as f64 / words as f64
    };
    Score {
        score,
        comparative,
        words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lexicon_is_sorted_unique_lowercase_and_in_range() {
        assert!(LEXICON.len() >= 300);
        for pair in LEXICON.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (word, value) in LEXICON {
            assert_eq!(*word, word.to_lowercase());
            assert!((-5..=5).contains(value) && *value != 0, "{word}");
        }
    }

    #[test]
    fn scores_positive_negative_and_neutral_text() {
        let happy = score_text("I love this, it is great!");
        assert_eq!(happy.score, 6);
        assert_eq!(happy.words, 6);
        assert_eq!(happy.label(), "positive");
        assert!((happy.comparative - 1.0).abs() < f64::EPSILON);
        let angry = score_text("Terrible, BROKEN and useless.");
        assert_eq!(angry.score, -3 - 1 - 2);
        assert_eq!(angry.label(), "negative");
        let flat = score_text("The meeting is at noon");
        assert_eq!(flat.score, 0);
        assert_eq!(flat.label(), "neutral");
        assert_eq!(score_text("").comparative, 0.0);
    }

    #[test]
    fn negation_flips_the_next_words_until_punctuation() {
        assert_eq!(score_text("not good").score, -3);
        assert_eq!(score_text("not very good").score, -3);
        assert_eq!(score_text("don't hate it").score, 3);
        assert_eq!(score_text("It isn’t bad").score, 3);
        assert_eq!(score_text("not bad. good").score, 6);
        assert_eq!(score_text("no, good").score, 3);
        assert_eq!(score_text("not that it was really good").score, 3);
    }
}
