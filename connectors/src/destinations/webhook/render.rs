//! The webhook bodies: Slack-compatible (`text` + Block Kit `blocks`) or the alert document as
//! JSON, for one alert or a digest.

use crate::destinations::alert::limit::span;
use crate::destinations::alert::text::format_time;
use crate::destinations::alert::{Alert, Detail};
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use std::time::Duration;

/// Slack's limits: header text 150 characters, a section's text 3000, ten fields per section.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 2900;
const FIELDS_MAX: usize = 10;

/// Escapes text for Slack `mrkdwn` (`&`, `<`, `>`).
pub fn mrkdwn_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn emoji(alert: &Alert) -> &'static str {
    if alert.is_resolved() {
        return ":white_check_mark:";
    }
    match alert.rank() {
        4 => ":rotating_light:",
        3 => ":warning:",
        2 => ":large_orange_circle:",
        _ => ":information_source:",
    }
}

fn field(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": cut(&format!("*{}*\n{}", label, value), 1900)})
}

/// Sections of bullet lines, each under Slack's text limit.
fn bullet_sections(title: &str, items: &[String]) -> Vec<Value> {
    let mut sections = Vec::new();
    let mut text = format!("*{title}*");
    for item in items {
        let line = format!("\n• {}", mrkdwn_escape(item));
        if text.len() + line.len() > SECTION_MAX {
            sections.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
            text = String::new();
        }
        text.push_str(&cut(&line, SECTION_MAX));
    }
    if !text.is_empty() {
        sections.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    sections
}

/// One alert, Slack-compatible. `text` (the notification line) carries no patient.
pub fn slack_alert(alert: &Alert, detail: Detail, zone: &TimeZone) -> Value {
    let text = alert.subject("");
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&format!("{} {}", emoji(alert), text), HEADER_MAX), "emoji": true}
    })];
    let mut fields = Vec::new();
    let scores = alert.scores();
    if !scores.is_empty() {
        fields.push(field("Score", &mrkdwn_escape(&scores.join(", "))));
    }
    if alert.is_clinical() || alert.ward().is_some() {
        let location = match alert.facility() {
            Some(facility) => format!("{} ({facility})", alert.location()),
            None => alert.location(),
        };
        fields.push(field("Location", &mrkdwn_escape(&location)));
    }
    if let Some(at) = alert.observed_at() {
        fields.push(field("Observed", &mrkdwn_escape(&format_time(at, zone))));
    }
    fields.push(field("Status", &mrkdwn_escape(&alert.status())));
    let number = format!("#{}", alert.id());
    let alert_field = match alert.link() {
        Some(link) if !link.contains(['|', '<', '>']) => format!("<{link}|{number}>"),
        _ => number,
    };
    fields.push(field("Alert", &alert_field));
    if detail == Detail::Full {
        if let Some(key) = alert.patient_key() {
            fields.push(field("Patient", &mrkdwn_escape(&key)));
        }
        if let Some(name) = alert.patient_name() {
            fields.push(field("Name", &mrkdwn_escape(&name)));
        }
    }
    fields.truncate(FIELDS_MAX);
    blocks.push(json!({"type": "section", "fields": fields}));
    let (reasons, inputs) = alert.details(detail, zone);
    if !reasons.is_empty() {
        blocks.extend(bullet_sections("Why", &reasons));
    }
    if !inputs.is_empty() {
        blocks.extend(bullet_sections("Score inputs", &inputs));
    }
    let mut context = vec!["Medway".to_string()];
    if let Some(rule) = alert.rule() {
        context.push(format!("rule {rule}"));
    }
    if let Some(at) = alert.raised_at() {
        context.push(format!("raised {}", format_time(at, zone)));
    }
    context.push(format!("alert #{}", alert.id()));
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": mrkdwn_escape(&context.join(" · "))}]
    }));
    json!({"text": text, "blocks": blocks})
}

/// A digest, Slack-compatible: one line per alert, most serious first.
pub fn slack_digest(
    alerts: &[(i64, Alert)],
    over: Duration,
    detail: Detail,
    zone: &TimeZone,
) -> Value {
    let text = digest_text(alerts, over);
    let mut ordered: Vec<&Alert> = alerts.iter().map(|(_, a)| a).collect();
    ordered.sort_by_key(|a| (std::cmp::Reverse(a.rank()), a.id()));
    let lines: Vec<String> = ordered
        .iter()
        .map(|a| a.digest_line(detail, zone))
        .collect();
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&format!(":bell: {text}"), HEADER_MAX), "emoji": true}
    })];
    blocks.extend(bullet_sections("Alerts", &lines));
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "Medway · sent together because this webhook is over its rate limit; each alert is listed once"}]
    }));
    json!({"text": text, "blocks": blocks})
}

/// `14 alerts in the last 10 s (highest: EMERGENCY)`.
pub fn digest_text(alerts: &[(i64, Alert)], over: Duration) -> String {
    let highest = alerts
        .iter()
        .max_by_key(|(_, a)| a.rank())
        .map(|(_, a)| a.severity())
        .unwrap_or_else(|| "ALERT".to_string());
    format!(
        "{} alerts in the last {} (highest: {highest})",
        alerts.len(),
        span(over)
    )
}

/// The fields a `minimal` JSON document keeps: nothing about the patient, and nothing Medway
/// does not know (a new field is only forwarded by `full`).
const MINIMAL_FIELDS: &[&str] = &[
    "alert_id",
    "kind",
    "rule",
    "severity",
    "state",
    "escalated_from",
    "title",
    "location",
    "scores",
    "observed_at",
    "raised_at",
    "link",
];

/// The alert document as JSON. `Full`: as received (unknown fields kept). `Minimal`: only
/// [`MINIMAL_FIELDS`] (no `patient`, no `reasons`), and `scores` reduced to its score objects,
/// each with `total`, `band` and `complete` only.
pub fn json_alert(alert: &Alert, detail: Detail) -> Value {
    let mut value = alert
        .payload
        .as_ref()
        .and_then(|p| serde_json::from_slice::<Value>(p).ok())
        .unwrap_or_else(|| rebuild(alert));
    if detail == Detail::Minimal
        && let Some(object) = value.as_object_mut()
    {
        object.retain(|key, _| MINIMAL_FIELDS.contains(&key.as_str()));
        if let Some(scores) = object.get_mut("scores").and_then(Value::as_object_mut) {
            // The score set also carries the patient key: only score objects stay.
            scores.retain(|_, score| score.is_object());
            for score in scores.values_mut() {
                if let Some(score) = score.as_object_mut() {
                    score.retain(|key, _| matches!(key.as_str(), "total" | "band" | "complete"));
                }
            }
        }
    }
    value
}

/// The document from its parsed form (when the payload is not at hand).
fn rebuild(alert: &Alert) -> Value {
    let d = &alert.doc;
    let scores: serde_json::Map<String, Value> = d
        .scores
        .iter()
        .map(|(key, score)| {
            let mut object: serde_json::Map<String, Value> =
                score.inputs.clone().into_iter().collect();
            object.insert("total".into(), json!(score.total));
            object.insert("band".into(), json!(score.band));
            object.insert("complete".into(), json!(score.complete));
            (key.clone(), Value::Object(object))
        })
        .collect();
    json!({
        "alert_id": d.alert_id, "kind": d.kind, "rule": d.rule, "severity": d.severity,
        "state": d.state, "escalated_from": d.escalated_from, "title": d.title,
        "location": {"ward": d.location.ward, "room": d.location.room, "bed": d.location.bed,
                     "facility": d.location.facility},
        "patient": d.patient.as_ref().map(|p| json!({"key": p.key, "name": p.name})),
        "scores": scores, "reasons": d.reasons, "observed_at": d.observed_at,
        "raised_at": d.raised_at, "link": d.link,
    })
}

/// A digest as JSON: `{"digest": true, "count": N, "text": "…", "alerts": [documents]}`.
pub fn json_digest(alerts: &[(i64, Alert)], over: Duration, detail: Detail) -> Value {
    json!({
        "digest": true,
        "count": alerts.len(),
        "text": digest_text(alerts, over),
        "alerts": alerts.iter().map(|(_, a)| json_alert(a, detail)).collect::<Vec<_>>(),
    })
}
