//! The messages: one alert, or a digest of several, each as `multipart/alternative` with a
//! plain-text and an HTML body. Subjects never carry the patient (see `alert::Alert::subject`).

use crate::destinations::alert::{Alert, Detail, html_escape, limit::span};
use jiff::tz::TimeZone;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use std::time::Duration;

/// What every message of one destination shares.
pub struct Style<'a> {
    pub from: &'a Mailbox,
    pub prefix: &'a str,
    pub detail: Detail,
    pub zone: &'a TimeZone,
}

/// `<medway.alert.1234@hospital.example>`: the same for every attempt of a delivery, so a
/// mail system (or a person) can tell a resend from a new alert.
pub fn alert_message_id(from: &Mailbox, delivery_id: i64) -> String {
    format!("<medway.alert.{delivery_id}@{}>", from.email.domain())
}

/// `<medway.digest.1234.1714559100123@hospital.example>`: one per digest sent.
pub fn digest_message_id(from: &Mailbox, first_delivery: i64) -> String {
    let millis = jiff::Timestamp::now().as_millisecond();
    format!(
        "<medway.digest.{first_delivery}.{millis}@{}>",
        from.email.domain()
    )
}

fn raw_header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(
        HeaderName::new_from_ascii_str(name),
        crate::destinations::alert::one_line(&value),
    )
}

fn base(
    style: &Style<'_>,
    to: &[Mailbox],
    subject: String,
    message_id: String,
) -> lettre::message::MessageBuilder {
    let mut builder = Message::builder()
        .from(style.from.clone())
        .subject(subject)
        .message_id(Some(message_id))
        .user_agent(concat!("medway/", env!("CARGO_PKG_VERSION")).to_string());
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder
}

fn build(
    builder: lettre::message::MessageBuilder,
    plain: String,
    html: String,
) -> Result<Vec<u8>, String> {
    builder
        .multipart(MultiPart::alternative_plain_html(plain, html))
        .map(|m| m.formatted())
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// One alert for `to`.
pub fn alert_message(
    alert: &Alert,
    style: &Style<'_>,
    to: &[Mailbox],
    delivery_id: i64,
) -> Result<Vec<u8>, String> {
    let subject = alert.subject(style.prefix);
    let lines = alert.lines(style.detail, style.zone);
    let (reasons, inputs) = alert.details(style.detail, style.zone);

    let mut plain = format!("{}\n\n", alert.subject(""));
    let width = lines.iter().map(|l| l.label.len()).max().unwrap_or(0) + 1;
    for line in &lines {
        plain.push_str(&format!(
            "{:<width$} {}\n",
            format!("{}:", line.label),
            line.value
        ));
    }
    for (title, list) in [("Why", &reasons), ("Score inputs", &inputs)] {
        if !list.is_empty() {
            plain.push_str(&format!("\n{title}:\n"));
            for item in list {
                plain.push_str(&format!("  - {item}\n"));
            }
        }
    }
    plain.push_str(&format!(
        "\n-- \nMedway alert #{}, delivery {delivery_id}.\n",
        alert.id()
    ));

    let colour = match alert.rank() {
        4 => "#b00020",
        3 => "#c45100",
        2 => "#a66a00",
        _ => "#355e8c",
    };
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif\">",
    );
    html.push_str(&format!(
        "<h2 style=\"color:{colour};margin:0 0 12px\">{}</h2><table cellpadding=\"4\">",
        html_escape(&alert.subject(""))
    ));
    for line in &lines {
        let value = if line.label == "Link" {
            format!("<a href=\"{0}\">{0}</a>", html_escape(&line.value))
        } else {
            html_escape(&line.value)
        };
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{value}</td></tr>",
            html_escape(line.label)
        ));
    }
    html.push_str("</table>");
    for (title, list) in [("Why", &reasons), ("Score inputs", &inputs)] {
        if !list.is_empty() {
            html.push_str(&format!("<h3>{title}</h3><ul>"));
            for item in list {
                html.push_str(&format!("<li>{}</li>", html_escape(item)));
            }
            html.push_str("</ul>");
        }
    }
    html.push_str(&format!(
        "<p style=\"color:#777;font-size:small\">Medway alert #{}, delivery {delivery_id}.</p>\
         </body></html>",
        alert.id()
    ));

    let mut builder = base(
        style,
        to,
        subject,
        alert_message_id(style.from, delivery_id),
    );
    for header in [
        raw_header("X-Medway-Alert-Id", alert.id().to_string()),
        raw_header("X-Medway-Severity", alert.severity()),
        raw_header("X-Medway-Delivery-Id", delivery_id.to_string()),
    ] {
        builder = builder.raw_header(header);
    }
    if alert.rank() >= 3 && !alert.is_resolved() {
        for header in [
            raw_header("Importance", "high".to_string()),
            raw_header("X-Priority", "1".to_string()),
        ] {
            builder = builder.raw_header(header);
        }
    }
    build(builder, plain, html)
}

/// `[Medway] 14 alerts in the last 10 s (highest: EMERGENCY)`.
pub fn digest_subject(prefix: &str, alerts: &[(i64, Alert)], over: Duration) -> String {
    let highest = alerts
        .iter()
        .max_by_key(|(_, a)| a.rank())
        .map(|(_, a)| a.severity())
        .unwrap_or_else(|| "ALERT".to_string());
    let prefix = crate::destinations::alert::one_line(prefix);
    let lead = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix} ")
    };
    format!(
        "{lead}{} alerts in the last {} (highest: {highest})",
        alerts.len(),
        span(over)
    )
}

/// One digest for one recipient: every alert of `alerts`, one line each, most serious first.
pub fn digest_message(
    alerts: &[(i64, Alert)],
    over: Duration,
    style: &Style<'_>,
    to: &Mailbox,
    message_id: String,
) -> Result<Vec<u8>, String> {
    let subject = digest_subject(style.prefix, alerts, over);
    let mut ordered: Vec<&(i64, Alert)> = alerts.iter().collect();
    ordered.sort_by_key(|(id, a)| (std::cmp::Reverse(a.rank()), a.id(), *id));
    let intro = format!(
        "{} alerts in the last {}, sent together because this address is over its rate limit. \
         Each alert is listed once.",
        alerts.len(),
        span(over)
    );
    let mut plain = format!("{intro}\n\n");
    let mut html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif\"><p>{}</p><ul>",
        html_escape(&intro)
    );
    for (_, alert) in &ordered {
        let line = alert.digest_line(style.detail, style.zone);
        plain.push_str(&format!("- {line}"));
        html.push_str(&format!("<li>{}", html_escape(&line)));
        if let Some(link) = alert.link() {
            plain.push_str(&format!("\n  {link}"));
            html.push_str(&format!(" — <a href=\"{0}\">{0}</a>", html_escape(&link)));
        }
        plain.push('\n');
        html.push_str("</li>");
    }
    let ids: Vec<String> = ordered.iter().map(|(_, a)| a.id().to_string()).collect();
    plain.push_str("\n-- \nMedway alert digest.\n");
    html.push_str(
        "</ul><p style=\"color:#777;font-size:small\">Medway alert digest.</p></body></html>",
    );
    let mut builder = base(style, std::slice::from_ref(to), subject, message_id);
    builder = builder.raw_header(raw_header("X-Medway-Alert-Id", ids.join(", ")));
    build(builder, plain, html)
}
