//! Which hub should own which piece of work (pure).
//!
//! Every hub computes the same answer from the same inputs: the works its
//! config defines and the hubs alive in the database, both sorted. Work `i`
//! goes to hub `i mod n`, so the works are spread as evenly as they can be,
//! and when a hub joins or leaves the assignment changes for everyone at
//! their next heartbeat: each hub gives up what is no longer its own, and
//! takes what is (once the lease is free or has expired).

/// The hub that should own `work` among `hubs` (sorted ids of the hubs
/// alive, this one included), given every work `works` (sorted); `None`
/// when `work` is not in `works` or no hub is alive.
pub fn owner_of<'a>(work: &str, works: &[String], hubs: &'a [String]) -> Option<&'a str> {
    if hubs.is_empty() {
        return None;
    }
    let index = works
        .binary_search_by(|known| known.as_str().cmp(work))
        .ok()?;
    hubs.get(index % hubs.len()).map(String::as_str)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn works_are_spread_evenly_and_every_work_has_one_owner() {
        let works = names(&["inbox:hook", "output:out", "poll:gen"]);
        let hubs = names(&["a", "b", "c"]);
        let owners: Vec<_> = works
            .iter()
            .map(|work| owner_of(work, &works, &hubs).unwrap())
            .collect();
        assert_eq!(owners, ["a", "b", "c"]);
        let two = names(&["a", "c"]);
        let owners: Vec<_> = works
            .iter()
            .map(|work| owner_of(work, &works, &two).unwrap())
            .collect();
        assert_eq!(owners, ["a", "c", "a"]);
    }

    #[test]
    fn a_lone_hub_owns_everything_and_unknown_work_nobody() {
        let works = names(&["output:out", "poll:gen"]);
        let hubs = names(&["only"]);
        assert_eq!(owner_of("poll:gen", &works, &hubs), Some("only"));
        assert_eq!(owner_of("poll:other", &works, &hubs), None);
        assert_eq!(owner_of("poll:gen", &works, &[]), None);
    }
}
