//! Row ↔ struct mapping shared by both backends. The SQL differs (placeholders, types); the
//! columns and the structs they fill do not, so they are written once, here, as a macro that
//! each backend instantiates with its own row type (and the integer type of `attempts`).

/// Defines `alert`, `score`, `summary`, `delivery_view` and the column lists for one backend.
macro_rules! row_mappers {
    ($row:ty, $int:ty) => {

        pub(super) const ALERT_COLUMNS: &str = "id, patient, rule, severity, rank, state, title, detail, score_id, \
             raised_at, suppress_until, updated_at, escalated_from, acknowledged_by, acknowledged_at, \
             resolved_by, resolved_at, dispatched_message_id";

        pub(super) const SCORE_COLUMNS: &str = "id, patient, at, news2_total, news2_band, qsofa_total, sirs_total, \
             complete, detail, message_id, delivery_id";

        pub(super) const SUMMARY_COLUMNS: &str =
            "id, channel, parent_id, received_at, control_id, message_type, status, error";

        pub(super) const DELIVERY_COLUMNS: &str = "id, message_id, channel, destination, ordering_key, status, \
             attempts, next_attempt_at, last_error, created_at, updated_at";

        pub(super) fn json(text: String) -> serde_json::Value {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        }

        pub(super) fn alert(row: &$row) -> Result<AlertRow, sqlx::Error> {
            Ok(AlertRow {
                id: row.try_get("id")?,
                patient: row.try_get("patient")?,
                rule: row.try_get("rule")?,
                severity: row.try_get("severity")?,
                rank: row.try_get("rank")?,
                state: row.try_get("state")?,
                title: row.try_get("title")?,
                detail: json(row.try_get("detail")?),
                score_id: row.try_get("score_id")?,
                raised_at: row.try_get("raised_at")?,
                suppress_until: row.try_get("suppress_until")?,
                updated_at: row.try_get("updated_at")?,
                escalated_from: row.try_get("escalated_from")?,
                acknowledged_by: row.try_get("acknowledged_by")?,
                acknowledged_at: row.try_get("acknowledged_at")?,
                resolved_by: row.try_get("resolved_by")?,
                resolved_at: row.try_get("resolved_at")?,
                dispatched_message_id: row.try_get("dispatched_message_id")?,
            })
        }

        pub(super) fn score(row: &$row) -> Result<ScoreRow, sqlx::Error> {
            Ok(ScoreRow {
                id: row.try_get("id")?,
                patient: row.try_get("patient")?,
                at: row.try_get("at")?,
                news2_total: row.try_get("news2_total")?,
                news2_band: row.try_get("news2_band")?,
                qsofa_total: row.try_get("qsofa_total")?,
                sirs_total: row.try_get("sirs_total")?,
                complete: row.try_get("complete")?,
                detail: json(row.try_get("detail")?),
                message_id: row.try_get("message_id")?,
                delivery_id: row.try_get("delivery_id")?,
            })
        }

        pub(super) fn summary(row: &$row) -> Result<MessageSummary, sqlx::Error> {
            Ok(MessageSummary {
                id: row.try_get("id")?,
                channel: row.try_get("channel")?,
                parent_id: row.try_get("parent_id")?,
                received_at: row.try_get("received_at")?,
                control_id: row.try_get("control_id")?,
                message_type: row.try_get("message_type")?,
                status: message_status(row.try_get("status")?),
                error: row.try_get("error")?,
            })
        }

        pub(super) fn delivery_view(row: &$row) -> Result<DeliveryView, sqlx::Error> {
            Ok(DeliveryView {
                id: row.try_get("id")?,
                message_id: row.try_get("message_id")?,
                channel: row.try_get("channel")?,
                destination: row.try_get("destination")?,
                ordering_key: row.try_get("ordering_key")?,
                status: delivery_status(row.try_get("status")?),
                attempts: row.try_get::<$int, _>("attempts")? as u32,
                next_attempt_at: row.try_get("next_attempt_at")?,
                last_error: row.try_get("last_error")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

    };
}

pub(crate) use row_mappers;
