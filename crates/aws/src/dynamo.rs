//! One DynamoDB table as the daemon uses it: every call bounded by a deadline on top
//! of the SDK's own timeouts, its failure described in one line, and the outcome of
//! conditional writes and transactions told apart from failures.
//!
//! The config item store (`action`) and the coordination store (`coord`) are both
//! written on this, so the rules for a timed-out or refused call live in one place.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem};
use tokio::time::timeout;

use super::describe;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

type Response = aws_sdk_dynamodb::config::http::HttpResponse;

/// A string attribute.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The string attribute `k`, if present and a string.
pub fn text(item: &Item, k: &str) -> Option<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

/// The number attribute `k` as a whole number, if present and one.
pub fn num(item: &Item, k: &str) -> Option<u64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// True when the boolean attribute `k` is present and true.
pub fn flag(item: &Item, k: &str) -> bool {
    matches!(item.get(k), Some(AttributeValue::Bool(true)))
}

/// Why a conditional single-item write did not happen.
#[derive(Debug)]
pub enum Conditional {
    /// The condition was false.
    Refused,
    /// The call failed or timed out (it may still have been applied).
    Failed(String),
}

/// Why one action of a cancelled transaction did not apply, as DynamoDB reports it
/// (one reason per action, in request order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// This action was fine; another one cancelled the transaction.
    None,
    /// Its condition was false.
    ConditionalCheckFailed,
    /// Another transaction was working on the item at that moment.
    TransactionConflict,
    /// Throttled (ThrottlingError, ProvisionedThroughputExceeded, RequestLimitExceeded).
    Throttled,
    /// Anything else (ValidationError, ...), with its code.
    Other(String),
}

/// Why a transaction did not apply.
#[derive(Debug)]
pub enum TxError {
    /// DynamoDB cancelled it: nothing was written; one reason per action.
    Cancelled(Vec<Cancel>),
    /// The call failed or timed out (it may still have been applied).
    Failed(String),
}

/// One table, one client, one deadline per call.
#[derive(Clone, Debug)]
pub struct Table {
    pub client: aws_sdk_dynamodb::Client,
    pub name: String,
    /// Bound on every call, on top of the SDK's own timeouts.
    pub limit: Duration,
}

impl Table {
    pub fn new(client: aws_sdk_dynamodb::Client, name: String, limit: Duration) -> Self {
        Self {
            client,
            name,
            limit,
        }
    }

    /// One call bounded by the deadline, its failure described as `op table: why`.
    pub async fn call<T, E>(
        &self,
        op: &str,
        fut: impl Future<Output = Result<T, SdkError<E, Response>>>,
    ) -> Result<T, String>
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        match timeout(self.limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{op} {}: {}", self.name, describe(&e))),
            Err(_) => Err(self.timed_out(op)),
        }
    }

    fn timed_out(&self, op: &str) -> String {
        format!("{op} {}: timed out after {:?}", self.name, self.limit)
    }

    /// Like [`Table::call`], with a failed condition told apart.
    pub async fn conditional<T, E>(
        &self,
        op: &str,
        fut: impl Future<Output = Result<T, SdkError<E, Response>>>,
    ) -> Result<T, Conditional>
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        match timeout(self.limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(SdkError::ServiceError(e)))
                if e.err().code() == Some("ConditionalCheckFailedException") =>
            {
                Err(Conditional::Refused)
            }
            Ok(Err(e)) => Err(Conditional::Failed(format!(
                "{op} {}: {}",
                self.name,
                describe(&e)
            ))),
            Err(_) => Err(Conditional::Failed(self.timed_out(op))),
        }
    }

    /// Runs a transaction. `token` is its ClientRequestToken: the same token and the
    /// same actions within ten minutes apply once, so a retry after a timeout learns
    /// that its first attempt applied.
    pub async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        token: Option<&str>,
    ) -> Result<(), TxError> {
        let call = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .set_client_request_token(token.map(str::to_owned))
            .send();
        let op = "transact_write_items";
        match timeout(self.limit, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(SdkError::ServiceError(e))) => {
                if let TransactWriteItemsError::TransactionCanceledException(c) = e.err() {
                    let reasons = c.cancellation_reasons().iter().map(cancel).collect();
                    return Err(TxError::Cancelled(reasons));
                }
                let e = SdkError::<TransactWriteItemsError, Response>::ServiceError(e);
                Err(TxError::Failed(format!(
                    "{op} {}: {}",
                    self.name,
                    describe(&e)
                )))
            }
            Ok(Err(e)) => Err(TxError::Failed(format!(
                "{op} {}: {}",
                self.name,
                describe(&e)
            ))),
            Err(_) => Err(TxError::Failed(self.timed_out(op))),
        }
    }

    /// One item by its `appId`, strongly consistent.
    pub async fn get(&self, key: &str) -> Result<Option<Item>, String> {
        let out = self
            .call(
                "get_item",
                self.client
                    .get_item()
                    .table_name(&self.name)
                    .key("appId", s(key))
                    .consistent_read(true)
                    .send(),
            )
            .await?;
        Ok(out.item().cloned())
    }

    /// Up to 100 items by `appId`, unprocessed keys retried (a few times) as
    /// DynamoDB asks. `consistent`: strongly consistent reads.
    pub async fn batch_get(
        &self,
        keys: impl IntoIterator<Item = String>,
        consistent: bool,
    ) -> Result<Vec<Item>, String> {
        let mut pending: Vec<Item> = keys
            .into_iter()
            .map(|k| HashMap::from([("appId".to_string(), s(k))]))
            .collect();
        let mut items = Vec::new();
        for _ in 0..4 {
            if pending.is_empty() {
                break;
            }
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(consistent)
                .build()
                .map_err(|e| e.to_string())?;
            let out = self
                .call(
                    "batch_get_item",
                    self.client
                        .batch_get_item()
                        .request_items(&self.name, keys)
                        .send(),
                )
                .await?;
            if let Some(found) = out.responses().and_then(|r| r.get(&self.name)) {
                items.extend(found.iter().cloned());
            }
            if let Some(rest) = out.unprocessed_keys().and_then(|u| u.get(&self.name)) {
                pending = rest.keys().to_vec();
            }
        }
        if !pending.is_empty() {
            return Err(format!(
                "batch_get_item {}: keys left unprocessed",
                self.name
            ));
        }
        Ok(items)
    }
}

fn cancel(r: &aws_sdk_dynamodb::types::CancellationReason) -> Cancel {
    match r.code() {
        None | Some("None") => Cancel::None,
        Some("ConditionalCheckFailed") => Cancel::ConditionalCheckFailed,
        Some("TransactionConflict") => Cancel::TransactionConflict,
        Some("ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded") => {
            Cancel::Throttled
        }
        Some(other) => Cancel::Other(other.to_owned()),
    }
}
