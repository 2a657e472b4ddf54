//! Finding the stack's own resource among those of one name. Some services keep
//! names unique (IAM roles, tables, buckets, alarms), others do not (REST APIs, user
//! and identity pools, distributions, health checks); every service asks the same
//! way: list the candidates of that name page by page, read each one's
//! [`STACK_TAG`], and keep the one whose value is this project. The others are
//! someone else's: reported, never adopted.

use std::future::Future;

use anyhow::{Result, bail};

use crate::sdk::STACK_TAG;
use failover_provision_engine::Observed;

/// What a search by name found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    /// Nothing of that name.
    Absent,
    /// Only resources that are not the stack's (`same`), and why (`why`).
    Foreign { why: String, same: Vec<T> },
    /// The stack's own.
    Ours(T),
}

impl<T> Found<T> {
    /// The stack's resource, or what the plan says when there is none.
    pub fn or_observed(self) -> Result<T, Observed> {
        match self {
            Found::Ours(t) => Ok(t),
            Found::Absent => Err(Observed::Absent),
            Found::Foreign { why, .. } => Err(Observed::Foreign(why)),
        }
    }

    /// The same finding about something else of each resource (its id, say).
    pub fn map<U>(self, f: impl Fn(T) -> U) -> Found<U> {
        match self {
            Found::Absent => Found::Absent,
            Found::Foreign { why, same } => Found::Foreign {
                why,
                same: same.into_iter().map(f).collect(),
            },
            Found::Ours(t) => Found::Ours(f(t)),
        }
    }
}

/// A search for the stack's resource called `name` (`what` names the resource
/// type in messages).
pub struct Lookup<'a> {
    pub what: &'static str,
    pub name: &'a str,
    pub project: &'a str,
}

impl Lookup<'_> {
    /// Lists every page of same-named candidates (`page(token)` answers one page,
    /// already filtered by name, and the next token), then keeps the stack's.
    pub async fn find<T, P, PF, G, GF>(&self, page: P, tag: G) -> Result<Found<T>>
    where
        P: FnMut(Option<String>) -> PF,
        PF: Future<Output = Result<(Vec<T>, Option<String>)>>,
        G: FnMut(&T) -> GF,
        GF: Future<Output = Result<Option<String>>>,
    {
        let same = every_page(page).await?;
        self.among(same, tag).await
    }

    /// Among `same` (the resources of that name), the one whose stack tag (read by
    /// `tag`) is this project's. More than one is an error: nothing can tell which
    /// one the stack should use.
    pub async fn among<T, G, GF>(&self, same: Vec<T>, mut tag: G) -> Result<Found<T>>
    where
        G: FnMut(&T) -> GF,
        GF: Future<Output = Result<Option<String>>>,
    {
        let mut ours = Vec::new();
        let mut others = Vec::new();
        let mut why = None;
        for candidate in same {
            match tag(&candidate).await? {
                Some(v) if v == self.project => ours.push(candidate),
                other => {
                    why.get_or_insert(match other {
                        Some(v) => format!("{} of stack {v:?}", self.what),
                        None => format!("{} without the {STACK_TAG} tag", self.what),
                    });
                    others.push(candidate);
                }
            }
        }
        match (ours.len(), why) {
            (1, _) => Ok(ours.pop().map_or(Found::Absent, Found::Ours)),
            (0, None) => Ok(Found::Absent),
            (0, Some(why)) => Ok(Found::Foreign { why, same: others }),
            (n, _) => bail!(
                "{n} of the {}s named {} carry this stack's tag; delete the extra ones by hand",
                self.what,
                self.name
            ),
        }
    }
}

/// Every page of a listing: `page(token)` answers one page and the next token.
pub async fn every_page<T, P, PF>(mut page: P) -> Result<Vec<T>>
where
    P: FnMut(Option<String>) -> PF,
    PF: Future<Output = Result<(Vec<T>, Option<String>)>>,
{
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = page(token.clone()).await?;
        all.extend(items);
        match next {
            // A service that hands back the token it was given has no more pages.
            Some(t) if !t.is_empty() && Some(&t) != token.as_ref() => token = Some(t),
            _ => return Ok(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup() -> Lookup<'static> {
        Lookup {
            what: "REST API",
            name: "photos-store-primary",
            project: "photos",
        }
    }

    /// Candidates `(id, stack tag)` served two per page.
    async fn search(all: &[(&str, Option<&str>)]) -> Result<Found<String>> {
        let all: Vec<(String, Option<String>)> = all
            .iter()
            .map(|(id, t)| (id.to_string(), t.map(String::from)))
            .collect();
        let pages = &all;
        lookup()
            .find(
                move |token: Option<String>| async move {
                    let at: usize = token.map_or(Ok(0), |t| t.parse())?;
                    let next = (at + 2 < pages.len()).then(|| (at + 2).to_string());
                    Ok((pages[at..pages.len().min(at + 2)].to_vec(), next))
                },
                |c: &(String, Option<String>)| {
                    let tag = c.1.clone();
                    async move { Ok(tag) }
                },
            )
            .await
            .map(|found| found.map(|(id, _)| id))
    }

    #[tokio::test]
    async fn the_stacks_own_is_found_on_any_page_among_others() {
        assert_eq!(search(&[]).await.unwrap(), Found::Absent);
        let found = search(&[
            ("a", None),
            ("b", Some("other")),
            ("c", None),
            ("d", Some("photos")),
        ])
        .await
        .unwrap();
        assert_eq!(found, Found::Ours("d".into()));
    }

    #[tokio::test]
    async fn only_foreign_ones_are_reported_with_the_reason() {
        let found = search(&[("a", Some("shop")), ("b", None)]).await.unwrap();
        assert_eq!(
            found,
            Found::Foreign {
                why: "REST API of stack \"shop\"".into(),
                same: vec!["a".into(), "b".into()],
            }
        );
        let untagged = search(&[("a", None)]).await.unwrap();
        assert_eq!(
            untagged.or_observed(),
            Err(Observed::Foreign(format!(
                "REST API without the {STACK_TAG} tag"
            )))
        );
    }

    #[tokio::test]
    async fn two_claiming_to_be_ours_is_an_error() {
        let err = search(&[("a", Some("photos")), ("b", Some("photos"))])
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("2 of the REST APIs named photos-store-primary carry this stack's tag"),
            "{err}"
        );
    }
}
