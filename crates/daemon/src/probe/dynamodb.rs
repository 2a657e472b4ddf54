//! `dynamodb`: `get_item` of the config item (it must be there and carry a state),
//! or `describe_table` (the table must be ACTIVE).

use aws_sdk_dynamodb::types::{AttributeValue, TableStatus};

use super::ProbeError;
use failover_config::DynamoCheck;

pub struct DynamoProbe {
    client: aws_sdk_dynamodb::Client,
    table: String,
    app_id: String,
    check: DynamoCheck,
}

impl DynamoProbe {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: String,
        app_id: String,
        check: DynamoCheck,
    ) -> Self {
        Self {
            client,
            table,
            app_id,
            check,
        }
    }

    pub async fn check(&self) -> Result<(), ProbeError> {
        match self.check {
            DynamoCheck::GetItem => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("appId", AttributeValue::S(self.app_id.clone()))
                    .send()
                    .await
                    .map_err(|e| ProbeError::sdk("get_item", &self.table, &e))?;
                match out.item() {
                    Some(item) if item.contains_key("state") => Ok(()),
                    // The table answered: a missing item is about the data (removed
                    // or named wrong), the same at every instance, not the region.
                    Some(_) => Err(ProbeError::Caller(format!(
                        "get_item {}: item {} has no state",
                        self.table, self.app_id
                    ))),
                    None => Err(ProbeError::Caller(format!(
                        "get_item {}: no item {}",
                        self.table, self.app_id
                    ))),
                }
            }
            DynamoCheck::DescribeTable => {
                let out = self
                    .client
                    .describe_table()
                    .table_name(&self.table)
                    .send()
                    .await
                    .map_err(|e| ProbeError::sdk("describe_table", &self.table, &e))?;
                match out.table().and_then(|t| t.table_status()) {
                    Some(TableStatus::Active) => Ok(()),
                    other => Err(ProbeError::Unhealthy(format!(
                        "describe_table {}: status {}",
                        self.table,
                        other.map_or("unknown", |s| s.as_str())
                    ))),
                }
            }
        }
    }
}
