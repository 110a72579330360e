//! `EmailSender`: the email destination for alerts. Each delivery's payload is an alert
//! document (`alert.rs`); it is mailed to the recipients its severity, rule and ward select.
//!
//! ```toml
//! [[destination]]
//! name = "alert-mail"
//! kind = "email"
//! host = "smtp.hospital.example"
//! port = 587                                   # default 587 (starttls), 465 (implicit), 25 (none)
//! tls = "starttls"                             # starttls (default) | implicit | none
//! ca_file = "/etc/medway/smtp-ca.pem"          # optional, trusted besides the system's roots
//! username = "medway"                          # optional, with password_file (never inline)
//! password_file = "/run/secrets/smtp-password"
//! from = "Medway Alerts <medway@hospital.example>"
//! to = ["outreach@hospital.example"]           # every alert
//! body = "minimal"                             # minimal (default) | full
//! time_zone = "Europe/London"                  # times in the body; default UTC
//! subject_prefix = "[Medway]"                  # the default
//! hello_name = "medway.hospital.example"       # EHLO name; default this host's name
//! connect_timeout_ms = 5000                    # TCP connect, default 5 s
//! timeout_ms = 20000                           # one whole SMTP exchange, default 20 s
//! rate_limit = { per_minute = 6, burst = 6 }   # per recipient (the default); per_minute = 0: off
//! digest_max = 100                             # alerts listed in one digest at most
//!
//! [destination.recipients]                     # extra recipients by severity
//! emergency = ["crash-team@hospital.example"]
//! sepsis = ["sepsis-team@hospital.example"]    # emergency | urgent | sepsis | info
//!
//! [destination.rule_recipients]                # extra recipients by rule
//! qsofa = ["sepsis-lead@hospital.example"]
//!
//! [destination.ward_recipients]                # extra recipients by ward (location.ward)
//! WARD7 = ["ward7-nurses@hospital.example"]
//! ```
//!
//! Recipients of an alert: `to` ∪ `recipients[severity]` ∪ `rule_recipients[rule]` ∪
//! `ward_recipients[ward]`, each address once. An alert that selects nobody is errored (never
//! dropped quietly): give `to` as the catch-all. At least one list must be non-empty.
//!
//! Each message: `Subject: [Medway] EMERGENCY: NEWS2 7 (high) — WARD7 12/A` — severity, state,
//! score and location only, **never the patient's name or identifier**; a `multipart/alternative`
//! body (plain text and HTML) with severity, scores, location, times, rule, alert number and
//! link; `body = "full"` adds the patient (key and name) and the reasons and score inputs.
//! `Message-ID: <medway.alert.<delivery id>@<from domain>>` is the same on every attempt (the
//! idempotency hint); `X-Medway-Alert-Id`, `X-Medway-Severity` and `X-Medway-Delivery-Id`
//! headers; `Importance: high` for emergency and sepsis alerts.
//!
//! Outcomes, per recipient (one SMTP transaction for all recipients due now, each `RCPT`
//! answered on its own):
//! - 250 after DATA → delivered to that recipient, remembered so a retry of the delivery does
//!   not mail them again.
//! - 5xx on `RCPT`, or on `DATA` → refused for good for that recipient.
//! - 4xx on `RCPT` or `DATA`, connection refused, TLS failure, authentication failure, a server
//!   without STARTTLS when `tls = "starttls"`, a timeout → `Retry::Later` (the message is not at
//!   fault; fixing the server or the settings lets it through).
//!
//! The delivery is **sent** once every recipient has it (alone or in a digest) or refused it
//! for good, and at least one has it; the summary names who got it and who refused. It is
//! **errored** when every recipient refused it. Otherwise it is retried, and the retry only
//! mails those still waiting.
//!
//! Rate limit: see `alert::limit` — over-limit alerts are held (`Retry::Later` with
//! `retry_after`) and sent as one digest per recipient when the limit allows again; a held
//! delivery is reported sent (`in digest <Message-ID>`) only after that digest was accepted.
//! Digest: `Subject: [Medway] 14 alerts in the last 10 s (highest: EMERGENCY)`, one line per
//! alert (the patient only with `body = "full"`).
//!
//! `check` (at start-up) connects, upgrades to TLS and logs in, without sending anything.
//!
//! Never logs or records a message body, a patient, or the password.

mod body;
mod settings;
mod smtp;

pub use settings::{EmailSettings, TlsMode};

use crate::destinations::alert::limit::{Claim, Outcome, Plan};
use crate::destinations::alert::{Alert, RecipientLimiter};
use async_trait::async_trait;
use body::Style;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use medway_engine::config::SettingsError;
use medway_engine::connector::{DeliveryError, Destination, Response};
use medway_engine::message::Delivery;
use settings::{Resolved, recipient_key};
use smtp::{Exchange, Smtp};
use std::time::{Duration, Instant};

/// Mails each alert delivery. One idle SMTP connection and one rate limiter per destination.
pub struct EmailSender {
    settings: EmailSettings,
    resolved: Resolved,
    smtp: Smtp,
    limiter: RecipientLimiter,
}

impl EmailSender {
    /// Reads the CA and password files and builds the TLS configuration: a missing or
    /// unreadable file is a settings error here, at start-up, pointing at its key.
    pub fn new(settings: EmailSettings) -> Result<Self, SettingsError> {
        let resolved = settings.resolve()?;
        let tls = match settings.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Implicit => Some(tls_parameters(&settings)?),
        };
        let credentials = match (&settings.username, &settings.password_file) {
            (Some(username), Some(path)) => {
                let password = std::fs::read_to_string(path).map_err(|e| {
                    SettingsError::new(format!("cannot read {}: {e}", path.display()))
                        .key("password_file")
                })?;
                let password = password.trim();
                if password.is_empty() {
                    return Err(SettingsError::new(format!(
                        "{} holds no password",
                        path.display()
                    ))
                    .key("password_file"));
                }
                Some(Credentials::new(username.clone(), password.to_string()))
            }
            _ => None,
        };
        let hello = match &settings.hello_name {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        let smtp = Smtp::new(
            settings.host.trim().to_string(),
            resolved.port,
            settings.tls,
            tls,
            hello,
            credentials,
            resolved.connect_timeout,
            resolved.timeout,
        );
        let limiter = RecipientLimiter::new(settings.rate_limit, settings.digest_max);
        Ok(Self {
            settings,
            resolved,
            smtp,
            limiter,
        })
    }

    fn style(&self) -> Style<'_> {
        Style {
            from: &self.resolved.from,
            prefix: &self.settings.subject_prefix,
            detail: self.settings.body,
            zone: &self.resolved.time_zone,
        }
    }

    /// Sends one digest; on success its alerts count as delivered to its recipient.
    async fn send_digest(&self, claim: Claim, recipient: &Mailbox) -> Result<(), String> {
        let first = claim.alerts.first().map_or(0, |(id, _)| *id);
        let message_id = body::digest_message_id(&self.resolved.from, first);
        let message = match body::digest_message(
            &claim.alerts,
            claim.since.elapsed(),
            &self.style(),
            recipient,
            message_id.clone(),
        ) {
            Ok(message) => message,
            Err(reason) => {
                self.limiter.digest_failed(claim);
                return Err(reason);
            }
        };
        let result = self
            .smtp
            .send(
                &self.resolved.from.email,
                std::slice::from_ref(&recipient.email),
                &message,
            )
            .await;
        match result {
            Ok(exchange) if !exchange.accepted.is_empty() => {
                tracing::info!(
                    alerts = claim.alerts.len(),
                    recipient = %recipient.email,
                    "alert digest mailed"
                );
                self.limiter.digest_sent(claim, &message_id);
                Ok(())
            }
            Ok(exchange) => {
                self.limiter.digest_failed(claim);
                let delivery = first;
                match exchange.refused.into_iter().next() {
                    Some((address, reason)) => {
                        // Refused for good: the alert being sent records it; the held ones
                        // come back and meet the same answer on their own.
                        self.limiter.record(
                            delivery,
                            &recipient_key(recipient),
                            Outcome::Refused(format!("{address}: {reason}")),
                        );
                        Ok(())
                    }
                    None => Err(exchange
                        .deferred
                        .into_iter()
                        .next()
                        .map(|(address, reason)| format!("{address}: {reason}"))
                        .unwrap_or_else(|| "digest not accepted".to_string())),
                }
            }
            Err(failure) => {
                self.limiter.digest_failed(claim);
                Err(failure.0)
            }
        }
    }

    /// Mails the alert itself to `to`, recording each recipient's answer.
    async fn send_single(
        &self,
        delivery: &Delivery,
        alert: &Alert,
        to: &[Mailbox],
    ) -> Result<(), String> {
        let message = body::alert_message(alert, &self.style(), to, delivery.id)?;
        let addresses: Vec<lettre::Address> = to.iter().map(|m| m.email.clone()).collect();
        let Exchange {
            accepted,
            refused,
            deferred,
        } = self
            .smtp
            .send(&self.resolved.from.email, &addresses, &message)
            .await
            .map_err(|f| f.0)?;
        let message_id = body::alert_message_id(&self.resolved.from, delivery.id);
        for address in &accepted {
            self.limiter.record(
                delivery.id,
                &address.to_string().to_lowercase(),
                Outcome::Sent(format!("as {message_id}")),
            );
        }
        for (address, reason) in &refused {
            tracing::warn!(
                delivery = delivery.id,
                alert = alert.id(),
                recipient = %address,
                reason = %reason,
                "alert email refused by the server for this recipient"
            );
            self.limiter.record(
                delivery.id,
                &address.to_string().to_lowercase(),
                Outcome::Refused(reason.clone()),
            );
        }
        match deferred.first() {
            Some((address, reason)) => Err(format!("{address}: {reason}")),
            None => Ok(()),
        }
    }
}

/// The TLS parameters: rustls (ring) with the platform verifier, plus `ca_file`.
fn tls_parameters(settings: &EmailSettings) -> Result<TlsParameters, SettingsError> {
    let mut builder = TlsParameters::builder(settings.host.trim().to_string());
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            SettingsError::new(format!("cannot read {}: {e}", path.display())).key("ca_file")
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(
                SettingsError::new(format!("no PEM certificate in {}", path.display()))
                    .key("ca_file")
                    .hint("the file must hold `-----BEGIN CERTIFICATE-----` blocks"),
            );
        }
        let certificate = Certificate::from_pem(&pem).map_err(|e| {
            SettingsError::new(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
            .key("ca_file")
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|e| {
        SettingsError::new(format!("TLS set-up failed: {e}"))
            .key(if settings.ca_file.is_some() {
                "ca_file"
            } else {
                "tls"
            })
            .hint("install the system CA bundle (ca-certificates) or name a CA file in `ca_file`")
    })
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

#[async_trait]
impl Destination for EmailSender {
    /// At start-up: the server is reachable, speaks TLS as configured and accepts the login.
    async fn check(&self) -> Result<(), DeliveryError> {
        self.smtp
            .check()
            .await
            .map_err(|failure| DeliveryError::later(failure.0))
    }

    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let started = Instant::now();
        let alert = Alert::from_payload(&delivery.payload).map_err(DeliveryError::never)?;
        let recipients = self.resolved.recipients(&alert);
        if recipients.is_empty() {
            return Err(DeliveryError::never(format!(
                "no recipient for a {} alert (rule {:?}, ward {:?}); set `to` as the catch-all",
                alert.doc.severity.to_ascii_lowercase(),
                alert.doc.rule,
                alert.ward().unwrap_or("")
            )));
        }

        let mut singles: Vec<Mailbox> = Vec::new();
        let mut digests: Vec<(Claim, &Mailbox)> = Vec::new();
        let mut waiting: Vec<String> = Vec::new();
        let mut wait: Option<Duration> = None;
        for recipient in &recipients {
            let key = recipient_key(recipient);
            match self.limiter.plan(delivery.id, &key, &alert) {
                Plan::Done(_) => {}
                Plan::Single => singles.push(recipient.clone()),
                Plan::Digest(claim) => digests.push((claim, recipient)),
                Plan::Held {
                    wait: w,
                    waiting: n,
                } => {
                    waiting.push(format!(
                        "rate limit: held for a digest to {} ({n} waiting, next in {} ms)",
                        recipient.email,
                        w.as_millis()
                    ));
                    wait = Some(wait.map_or(w, |x| x.min(w)));
                }
                Plan::InFlight => {
                    waiting.push(format!("in a digest being sent to {}", recipient.email));
                    let w = Duration::from_secs(1);
                    wait = Some(wait.map_or(w, |x| x.min(w)));
                }
            }
        }

        let mut deferred: Vec<String> = Vec::new();
        if !singles.is_empty()
            && let Err(reason) = self.send_single(delivery, &alert, &singles).await
        {
            deferred.push(reason);
        }
        for (claim, recipient) in digests {
            if let Err(reason) = self.send_digest(claim, recipient).await {
                deferred.push(reason);
            }
        }

        if !deferred.is_empty() || !waiting.is_empty() {
            let mut reasons = deferred;
            reasons.extend(waiting);
            let error = DeliveryError::later(list(&reasons));
            return Err(match wait {
                Some(w) => error.after(w),
                None => error,
            });
        }

        let outcomes = self.limiter.outcomes(delivery.id);
        self.limiter.finished(delivery.id);
        let mut sent = Vec::new();
        let mut refused = Vec::new();
        for recipient in &recipients {
            let key = recipient_key(recipient);
            match outcomes.get(&key) {
                Some(Outcome::Sent(how)) => sent.push(format!("{} {how}", recipient.email)),
                Some(Outcome::Refused(why)) => refused.push(format!("{}: {why}", recipient.email)),
                // Only possible if the bookkeeping was forgotten meanwhile: send again.
                None => {
                    return Err(DeliveryError::later(format!(
                        "no record for {}; sending again",
                        recipient.email
                    )));
                }
            }
        }
        if sent.is_empty() {
            return Err(DeliveryError::never(format!(
                "refused by every recipient: {}",
                list(&refused)
            )));
        }
        let mut summary = format!(
            "mailed to {} of {} recipient(s) in {} ms: {}",
            sent.len(),
            recipients.len(),
            started.elapsed().as_millis(),
            list(&sent)
        );
        if !refused.is_empty() {
            summary.push_str(&format!("; refused by {}", list(&refused)));
        }
        Ok(Response { summary })
    }
}
