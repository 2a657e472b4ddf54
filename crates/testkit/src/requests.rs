//! How the in-memory table answers requests (`table.rs` says which of DynamoDB's
//! semantics): write requests, single-item or transactions, with their conditions,
//! throttling, client request tokens and transactions in progress; reads and
//! `BatchGetItem` rounds. The stores (`stores.rs`) are written on these.

use super::table::{Inner, MemTable, Record, next_stamp};
use failover_aws::dynamo::Cancel;

/// One round of a batch read: the records read and the keys left unprocessed.
type BatchRound = (Vec<(String, Record)>, Vec<String>);

/// A check on the item at `key` before a write: the condition expression.
type Check<'a> = Box<dyn Fn(Option<&Record>) -> bool + Send + 'a>;

/// An UpdateItem's expression: the item after, from the item before.
type Updater<'a> = Box<dyn Fn(Option<&Record>) -> Record + Send + 'a>;

/// What an action writes.
pub(super) enum Write<'a> {
    /// Nothing: a condition check.
    Nothing,
    /// This item (PutItem, or an UpdateItem that sets every attribute).
    Put(Record),
    /// The item made from the one there (an UpdateItem like `SET n = n + 1`).
    Update(Updater<'a>),
}

/// One action of a transaction (or a single conditional write).
pub(super) struct Action<'a> {
    pub key: String,
    pub check: Check<'a>,
    pub write: Write<'a>,
}

/// How long DynamoDB remembers a client request token.
const TOKEN_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// Why a transaction did not apply.
#[derive(Debug)]
pub(super) enum TxError {
    Cancelled(Vec<Cancel>),
    Unavailable(String),
}

/// What a write request is, as DynamoDB tells them apart: a single-item write
/// (PutItem, UpdateItem) or a TransactWriteItems, even of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Request {
    Single,
    Transaction,
}

/// Answers that every request gets while the request rate is throttled.
const THROTTLED: &str =
    "ThrottlingException: the request rate is too high (nothing was read or written)";

impl MemTable {
    /// Whether a transaction with client request token `token` applied within the
    /// last ten minutes: the same request again answers success and applies
    /// nothing (a replay), as DynamoDB does.
    pub fn remembers_token(&self, token: &str) -> bool {
        let now = tokio::time::Instant::now();
        self.lock()
            .tokens
            .get(token)
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) < TOKEN_WINDOW)
    }

    /// Waits the injected delay, if any (a slow region).
    pub(super) async fn wait(&self) {
        if let Some(d) = self.delay() {
            tokio::time::sleep(d).await;
        }
    }

    /// Sends one write request. A transaction takes the table's transaction time:
    /// its items are in progress from now until it applies, which it does in a task
    /// of its own (the request is in DynamoDB's hands: the caller going away does not
    /// stop it).
    pub(super) async fn request(
        &self,
        actions: Vec<Action<'static>>,
        token: Option<String>,
        kind: Request,
    ) -> Result<(), TxError> {
        let time = self.lock().transaction_time;
        if kind == Request::Single || time.is_zero() {
            return self.transact(actions, token.as_deref(), kind, None);
        }
        let id = self.begin(&actions, token.as_deref())?;
        let table = self.clone();
        let server = tokio::spawn(async move {
            tokio::time::sleep(time).await;
            table.transact(actions, token.as_deref(), kind, Some(id))
        });
        server
            .await
            .unwrap_or_else(|e| Err(TxError::Unavailable(format!("the request was lost: {e}"))))
    }

    /// Another writer's transaction on `keys` (the application's, a person's
    /// script) is in progress from now for the table's transaction time, unless one
    /// on them already is; true when it began. It writes nothing here.
    pub fn foreign_transaction(&self, keys: &[&str]) -> bool {
        let time = self.lock().transaction_time;
        if time.is_zero() {
            return false;
        }
        let actions: Vec<Action<'static>> = keys
            .iter()
            .map(|k| Action {
                key: (*k).to_owned(),
                check: Box::new(|_| true),
                write: Write::Nothing,
            })
            .collect();
        let Ok(id) = self.begin(&actions, None) else {
            return false;
        };
        let table = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(time).await;
            table.lock().in_progress.retain(|(i, _, _)| *i != id);
        });
        true
    }

    /// Marks the items of a transaction in progress, unless the request is refused
    /// at once (throttled, an item or the token already in progress).
    fn begin(&self, actions: &[Action<'_>], token: Option<&str>) -> Result<u64, TxError> {
        let mut inner = self.lock();
        refuse_request(&mut inner, actions, token, Request::Transaction)?;
        inner.next_id += 1;
        let id = inner.next_id;
        let keys = actions.iter().map(|a| a.key.clone()).collect();
        inner.in_progress.push((id, keys, token.map(str::to_owned)));
        Ok(id)
    }

    /// Evaluates every condition, then applies every write, or none. `marked`: the
    /// transaction whose items were in progress until now (its mark is taken off).
    pub(super) fn transact(
        &self,
        actions: Vec<Action<'_>>,
        token: Option<&str>,
        kind: Request,
        marked: Option<u64>,
    ) -> Result<(), TxError> {
        let mut inner = self.lock();
        match marked {
            Some(id) => inner.in_progress.retain(|(i, _, _)| *i != id),
            None => refuse_request(&mut inner, &actions, token, kind)?,
        }
        let fingerprint = actions
            .iter()
            .map(|a| match &a.write {
                Write::Nothing => format!("check {}", a.key),
                Write::Put(r) => format!("put {} {r:?}", a.key),
                Write::Update(_) => format!("update {}", a.key),
            })
            .collect::<Vec<_>>()
            .join("; ");
        if inner.faults.throttle > 0 {
            inner.faults.throttle -= 1;
            return Err(if kind == Request::Transaction {
                TxError::Cancelled(vec![Cancel::Throttled; actions.len()])
            } else {
                TxError::Unavailable("ThrottlingException: nothing was written".into())
            });
        }
        let now = tokio::time::Instant::now();
        inner
            .tokens
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < TOKEN_WINDOW);
        if let Some(t) = token
            && let Some((seen, _)) = inner.tokens.get(t)
        {
            return if *seen == fingerprint {
                Ok(())
            } else {
                Err(TxError::Cancelled(vec![Cancel::Other(
                    "IdempotentParameterMismatch".into(),
                )]))
            };
        }
        let reasons: Vec<Cancel> = actions
            .iter()
            .map(|a| {
                if (a.check)(inner.items.get(&a.key).map(|e| &e.record)) {
                    Cancel::None
                } else {
                    Cancel::ConditionalCheckFailed
                }
            })
            .collect();
        if reasons.iter().any(|r| *r != Cancel::None) {
            return Err(TxError::Cancelled(reasons));
        }
        let stamp = next_stamp(&mut inner);
        for a in actions {
            let record = match a.write {
                Write::Nothing => continue,
                Write::Put(r) => r,
                Write::Update(f) => f(inner.items.get(&a.key).map(|e| &e.record)),
            };
            self.apply(&mut inner, &a.key, Some(record), stamp);
        }
        if let Some(t) = token {
            inner.tokens.insert(t.to_owned(), (fingerprint, now));
        }
        if inner.faults.fail_after_apply > 0 {
            inner.faults.fail_after_apply -= 1;
            return Err(TxError::Unavailable(
                "timed out (the write was applied)".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn read_key(&self, key: &str) -> Result<Option<Record>, String> {
        let inner = self.lock();
        refuse_read(&inner)?;
        Ok(inner.items.get(key).map(|e| e.record.clone()))
    }

    /// `BatchGetItem` of `keys`, the keys it leaves unprocessed asked again, at most
    /// four rounds in all, as `failover_aws::dynamo::Table::batch_get` does; an
    /// error when some are still left.
    pub(super) fn read_many(&self, keys: &[String]) -> Result<Vec<(String, Record)>, String> {
        let mut pending = keys.to_vec();
        let mut found = Vec::new();
        for _ in 0..4 {
            if pending.is_empty() {
                break;
            }
            let (got, rest) = self.batch_round(&pending)?;
            found.extend(got);
            pending = rest;
        }
        if !pending.is_empty() {
            return Err("batch_get_item: keys left unprocessed".into());
        }
        Ok(found)
    }

    /// One `BatchGetItem` round: what it found, and the keys left unprocessed.
    fn batch_round(&self, keys: &[String]) -> Result<BatchRound, String> {
        let mut inner = self.lock();
        refuse_read(&inner)?;
        let mut asked = keys.to_vec();
        let mut left = Vec::new();
        if inner.faults.unprocessed > 0 {
            inner.faults.unprocessed -= 1;
            left = asked.split_off(keys.len() / 2);
        }
        let found = asked
            .iter()
            .filter_map(|k| inner.items.get(k).map(|e| (k.clone(), e.record.clone())))
            .collect();
        Ok((found, left))
    }
}

/// A read refused as a whole: the region down, reads failing, the request rate
/// throttled.
fn refuse_read(inner: &Inner) -> Result<(), String> {
    if inner.down || reads_fail(inner) {
        return Err("the region does not answer".into());
    }
    if throttled(inner) {
        return Err(THROTTLED.into());
    }
    Ok(())
}

/// A write request refused before its conditions are looked at: the region down,
/// the request rate throttled, its items (or its token) in another transaction's
/// hands.
fn refuse_request(
    inner: &mut Inner,
    actions: &[Action<'_>],
    token: Option<&str>,
    kind: Request,
) -> Result<(), TxError> {
    if inner.down {
        return Err(TxError::Unavailable("the region does not answer".into()));
    }
    if throttled(inner) {
        return Err(TxError::Unavailable(THROTTLED.into()));
    }
    if token.is_some_and(|t| {
        inner
            .in_progress
            .iter()
            .any(|(_, _, other)| other.as_deref() == Some(t))
    }) {
        return Err(TxError::Unavailable(
            "TransactionInProgressException: the transaction with this token is in progress".into(),
        ));
    }
    let busy = |key: &str| {
        inner
            .in_progress
            .iter()
            .any(|(_, keys, _)| keys.iter().any(|k| k == key))
    };
    if !actions.iter().any(|a| busy(&a.key)) {
        return Ok(());
    }
    Err(match kind {
        Request::Single => TxError::Unavailable(
            "TransactionConflictException: the item is in another transaction (nothing was written)"
                .into(),
        ),
        Request::Transaction => TxError::Cancelled(
            actions
                .iter()
                .map(|a| {
                    if busy(&a.key) {
                        Cancel::TransactionConflict
                    } else {
                        Cancel::None
                    }
                })
                .collect(),
        ),
    })
}

fn throttled(inner: &Inner) -> bool {
    inner
        .faults
        .throttle_requests_until
        .is_some_and(|t| tokio::time::Instant::now() < t)
}

/// A read fault armed until a time not yet reached.
fn reads_fail(inner: &Inner) -> bool {
    inner
        .faults
        .reads_fail_until
        .is_some_and(|t| tokio::time::Instant::now() < t)
}
