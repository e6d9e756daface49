//! What is asked ([`Query`]) and how ([`Method`]): plain data with no device behind it, so the
//! web page parses and checks queries with the same rules as the CLI.

use crate::error::{ClipError, Result};

/// How image tokens are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// CLIP Surgery: architecture surgery in the image tower (and, downstream, feature surgery).
    #[default]
    Surgery,
    /// Plain CLIP: every token through `ln_post` + projection, no surgery (the paper's
    /// "raw" maps, which highlight background).
    Raw,
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "surgery" => Ok(Self::Surgery),
            "raw" => Ok(Self::Raw),
            other => Err(format!("unknown method `{other}` (surgery, raw)")),
        }
    }
}

impl Method {
    /// Lower-case name (CLI flag, URL parameter).
    pub fn name(self) -> &'static str {
        match self {
            Self::Surgery => "surgery",
            Self::Raw => "raw",
        }
    }
}

/// Which attention rows to compute (the attention view): the query patch `[row, col]` of the
/// grid, in `block` (`None`: the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttentionAt {
    /// 0-based block; `None` for the last.
    pub block: Option<usize>,
    /// The query patch.
    pub patch: [usize; 2],
}

/// What the user asked to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// One free text (single-text feature surgery with the empty-string redundancy). A text
    /// with "+" (e.g. `"person+bench"`) is a combined target: each part is explained on its
    /// own and the min-maxed maps are averaged (official demo).
    Text(String),
    /// A label set (label-set feature surgery: the features shared by all classes are removed).
    Labels(Vec<String>),
}

impl Query {
    /// Parses a comma-separated label list, trimming blanks; empty → [`ClipError::EmptyQuery`],
    /// a label given twice → [`ClipError::DuplicateLabel`] (results are per label, and two
    /// identical labels would compete in feature surgery for nothing).
    pub fn labels(list: &str) -> Result<Self> {
        Self::label_set(split_labels(list))
    }

    /// A label set given as a list (each trimmed; blanks dropped), checked as [`Self::labels`].
    pub fn label_set(labels: Vec<String>) -> Result<Self> {
        let labels: Vec<String> = labels
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if labels.is_empty() {
            return Err(ClipError::EmptyQuery);
        }
        for (i, label) in labels.iter().enumerate() {
            if labels[..i].contains(label) {
                return Err(ClipError::DuplicateLabel(label.clone()));
            }
        }
        Ok(Self::Labels(labels))
    }

    /// A single text; blank → [`ClipError::EmptyQuery`].
    pub fn text(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() || split_target(text).is_empty() {
            return Err(ClipError::EmptyQuery);
        }
        Ok(Self::Text(text.to_string()))
    }

    /// The label under which each result column is reported.
    pub fn display_labels(&self) -> Vec<String> {
        match self {
            Self::Text(t) => vec![t.clone()],
            Self::Labels(l) => l.clone(),
        }
    }

    /// Whether the result is a combination of "a+b" parts (a single text with several
    /// targets), whose one column is already min-maxed.
    pub fn is_combined(&self) -> bool {
        matches!(self, Self::Text(t) if split_target(t).len() > 1)
    }
}

/// The parts of an "a+b" target (one part for a plain text).
pub fn split_target(text: &str) -> Vec<String> {
    split_trimmed(text, '+')
}

/// A comma-separated label list: trimmed, blanks dropped.
pub fn split_labels(list: &str) -> Vec<String> {
    split_trimmed(list, ',')
}

fn split_trimmed(s: &str, separator: char) -> Vec<String> {
    s.split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_reject_empty_input() {
        assert!(matches!(Query::labels(" , ,"), Err(ClipError::EmptyQuery)));
        assert!(matches!(Query::text("  "), Err(ClipError::EmptyQuery)));
        assert!(matches!(Query::text("+"), Err(ClipError::EmptyQuery)));
        assert_eq!(
            Query::labels("cat, dog,").unwrap(),
            Query::Labels(vec!["cat".into(), "dog".into()])
        );
        assert_eq!(split_target("person + bench"), vec!["person", "bench"]);
    }

    #[test]
    fn duplicate_labels_are_refused_by_name() {
        let err = Query::labels("cat, dog, cat ").unwrap_err();
        assert!(
            matches!(&err, ClipError::DuplicateLabel(l) if l == "cat"),
            "{err}"
        );
        assert!(err.to_string().contains("\"cat\" is given twice"), "{err}");
        // Different strings are different labels.
        assert!(Query::labels("cat, Cat, cats").is_ok());
        assert!(matches!(
            Query::label_set(vec![" a".into(), "a ".into()]),
            Err(ClipError::DuplicateLabel(_))
        ));
    }

    #[test]
    fn only_a_text_with_several_targets_is_combined() {
        assert!(Query::text("person + bench").unwrap().is_combined());
        assert!(!Query::text("person").unwrap().is_combined());
        // In a label set '+' is just a character of the label.
        assert!(!Query::labels("cat+dog").unwrap().is_combined());
    }
}
