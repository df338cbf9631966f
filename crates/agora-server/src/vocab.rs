//! Vocabularies: the words an API uses for the application's typed values (a status filter,
//! a sort order), as tables. The native API and every dialect declare their own table and
//! parse with the same machinery, so no list filter or sort is parsed in two places and a
//! dialect's vocabulary is data, not code.

use agora_core::Invalid;

/// A word → value table for one query parameter.
#[derive(Debug)]
pub struct Vocabulary<T: 'static> {
    /// The parameter's name, for error paths.
    pub field: &'static str,
    pub words: &'static [(&'static str, T)],
}

impl<T: Clone> Vocabulary<T> {
    /// The value `raw` names, the default when absent or blank; a word not in the table is
    /// a 422 naming the words that are.
    pub fn parse(&self, raw: Option<&str>, default: T) -> Result<T, Invalid> {
        match raw.map(str::trim).filter(|r| !r.is_empty()) {
            None => Ok(default),
            Some(word) => self.find(word),
        }
    }

    /// The value `raw` names, or `None` when absent or blank.
    pub fn parse_opt(&self, raw: Option<&str>) -> Result<Option<T>, Invalid> {
        raw.map(str::trim).filter(|r| !r.is_empty()).map(|w| self.find(w)).transpose()
    }

    fn find(&self, word: &str) -> Result<T, Invalid> {
        self.words
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Invalid::field(self.field, format!("must be {}", self.listing())))
    }

    /// "a, b or c".
    fn listing(&self) -> String {
        let words: Vec<&str> = self.words.iter().map(|(w, _)| *w).collect();
        match words.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            Some((only, _)) => (*only).to_owned(),
            None => String::new(),
        }
    }
}

impl<T: Clone + 'static> Vocabulary<&'static [T]> {
    /// A comma-separated list of words, each naming a set of values; their union (empty
    /// when absent). Every unknown word is reported.
    pub fn parse_list(&self, raw: Option<&str>) -> Result<Vec<T>, Invalid> {
        let mut inv = Invalid::default();
        let mut out: Vec<T> = Vec::new();
        for word in raw.into_iter().flat_map(|r| r.split(',')).map(str::trim).filter(|w| !w.is_empty()) {
            match self.words.iter().find(|(w, _)| *w == word) {
                Some((_, values)) => out.extend(values.iter().cloned()),
                None => inv
                    .push(self.field, format!("unknown {} {word:?}; must be {}", self.field, self.listing())),
            }
        }
        inv.finish(|| out)
    }

    /// The word whose set holds `value`: the same table read the other way, to show a
    /// value in the API's own words. The empty string if no word covers it.
    pub fn word_for(&self, value: &T) -> &'static str
    where
        T: PartialEq,
    {
        self.words.iter().find(|(_, values)| values.contains(value)).map_or("", |(w, _)| *w)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SORT: Vocabulary<u8> =
        Vocabulary { field: "sort", words: &[("newest", 1), ("oldest", 2), ("price", 3)] };
    const STATUS: Vocabulary<&[u8]> =
        Vocabulary { field: "status", words: &[("open", &[1]), ("done", &[2, 3])] };

    #[test]
    fn words_parse_and_unknown_ones_name_the_choices() {
        assert_eq!(SORT.parse(None, 9).unwrap(), 9);
        assert_eq!(SORT.parse(Some(" oldest "), 9).unwrap(), 2);
        let e = SORT.parse(Some("best"), 9).unwrap_err();
        assert_eq!(e.0[0].path, "sort");
        assert_eq!(e.0[0].message, "must be newest, oldest or price");
        assert_eq!(SORT.parse_opt(Some("")).unwrap(), None);
    }

    #[test]
    fn lists_are_unions_and_report_every_unknown_word() {
        assert_eq!(STATUS.word_for(&3), "done");
        assert_eq!(STATUS.word_for(&9), "");
        assert_eq!(STATUS.parse_list(Some("open,done")).unwrap(), [1, 2, 3]);
        assert_eq!(STATUS.parse_list(None).unwrap(), Vec::<u8>::new());
        assert_eq!(STATUS.parse_list(Some("x, open, y")).unwrap_err().0.len(), 2);
    }
}
