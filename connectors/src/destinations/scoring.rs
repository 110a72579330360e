//! `ScoringDestination`: reads vitals and labs out of each ORU, keeps every patient's recent
//! observations in the store, computes NEWS2, qSOFA and SIRS, stores each score with the inputs
//! it used, and raises alerts by rule — handed to an alert channel whose destinations (email,
//! webhook) dispatch them with the usual retries.
//!
//! ```toml
//! [[destination]]
//! name = "scoring"
//! kind = "scoring"
//! alert_channel = "alerts"            # a channel (usually `kind = "internal"`) that dispatches
//! codes = "channels/maps/monitor-codes.toml"   # optional local codes (LOINC is built in)
//! link = "http://medway.ward.local/alerts/{alert_id}"   # optional, in the alert text
//! identifier_systems = { "urn:oid:2.16.840.1.113883.2.1.4.1" = "NHS" }   # FHIR only, optional
//! [destination.scoring]               # DECISIONS.md settings, all optional
//! qsofa_mentation = "gcs_lt_15_or_acvpu"
//! [destination.alerts]                # thresholds and the suppression window
//! suppression_minutes = 240
//! ```
//!
//! Payloads are HL7 v2 ORUs or FHIR R4 JSON (detected by a leading `{`): an Observation or a
//! Bundle holding Observations (components included: a blood-pressure panel's systolic, a pulse
//! oximetry's inspired-oxygen flow). FHIR values go through the same code tables, unit
//! normalisation and status rules (`final`, `amended`/`corrected`, `preliminary`,
//! `entered-in-error`, `cancelled`) into the same observation rows, and are scored alike. Their
//! patient key is the subject's identifier (`subject.identifier`, or the identifiers of the
//! Patient its reference resolves to in the Bundle) as `value^^^authority`, the authority
//! being `identifier_systems[system]`, else the system URI itself.
//!
//! Invariants: an observation belongs to the PID it came under, and a patient's window holds
//! only that patient's observations (the store is queried by patient key, and the window
//! refuses strangers); a message without a patient identifier is never scored (errored, with
//! the reason); recording a delivery twice adds nothing (observations are unique per delivery
//! and position; an alert already raised for the same band is not raised again; an alert
//! raised but not yet handed over is handed over on the retry). Never logs a value or a
//! patient identifier.

use async_trait::async_trait;
use bytes::Bytes;
use medway_engine::alerts::{
    AlertDocument, AlertLocation, AlertPatient, AlertRules, Decision, ScoreSummary, decide, title,
};
use medway_engine::clock::{micros_to_rfc3339, now_micros};
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{ConnectorContext, DeliveryError, Destination, Response};
use medway_engine::message::{Delivery, Inbound, Lineage};
use medway_engine::scoring::{
    CodeMap, Extracted, Observation, PatientFlags, PatientKey, PatientWindow, ResultStatus,
    ScaleFlag, Scores, ScoringSettings, ScoringSettingsFile, VitalKind, extract, fhir,
};
use medway_engine::store::{AlertRow, ObservationRow, ScoreRow, Store};
use medway_hl7::Message;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// `[[destination]] kind = "scoring"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringDestinationSettings {
    /// The channel alerts are handed to.
    pub alert_channel: String,
    /// A local code map (TOML or CSV) added to the built-in LOINC codes.
    pub codes: Option<PathBuf>,
    /// A link template for alerts; `{alert_id}` is replaced.
    pub link: Option<String>,
    #[serde(default)]
    pub scoring: Option<ScoringSettingsFile>,
    #[serde(default)]
    pub alerts: AlertRules,
    /// FHIR identifier system URI → the authority of the patient key (`value^^^AUTHORITY`), so
    /// FHIR and HL7 observations of one patient share a key.
    #[serde(default)]
    pub identifier_systems: HashMap<String, String>,
}

/// What the destination was built from, checked.
pub struct ScoringSetup {
    settings: ScoringDestinationSettings,
    codes: CodeMap,
    scoring: ScoringSettings,
}

impl ScoringSetup {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: ScoringDestinationSettings = spec.parse()?;
        // The HTTP destination's table runs the other way (AUTHORITY = URI): a copied table
        // would silently map nothing, so say so.
        if let Some((system, _)) = settings
            .identifier_systems
            .iter()
            .find(|(system, authority)| !system.contains(':') && authority.contains(':'))
        {
            return Err(SettingsError::new(format!(
                "identifier_systems maps a FHIR identifier system URI to an assigning authority, \
                 but {system:?} is not a URI"
            ))
            .key("identifier_systems")
            .hint("here: { \"urn:oid:…\" = \"HOSP\" }; the http destination's table is the other way round"));
        }
        // A local map comes with the built-in LOINC codes; its codes win.
        let codes = match &settings.codes {
            None => CodeMap::builtin(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SettingsError::new(format!("cannot read {}: {e}", path.display())).key("codes")
                })?;
                if path.extension().is_some_and(|x| x == "csv") {
                    CodeMap::from_csv_str(&text)
                } else {
                    CodeMap::from_toml_str(&text)
                }
                .map_err(|e| SettingsError::new(format!("{}: {e}", path.display())).key("codes"))?
            }
        };
        let scoring = match settings.scoring.clone() {
            None => ScoringSettings::default(),
            Some(file) => file
                .into_settings()
                .map_err(|e| SettingsError::new(e).key("scoring"))?,
        };
        Ok(Self {
            settings,
            codes,
            scoring,
        })
    }
}

pub struct ScoringDestination {
    setup: ScoringSetup,
    cx: ConnectorContext,
}

impl ScoringDestination {
    pub fn new(setup: ScoringSetup, cx: ConnectorContext) -> Self {
        Self { setup, cx }
    }

    fn store(&self) -> Result<&Arc<dyn Store>, DeliveryError> {
        self.cx
            .store
            .as_ref()
            .ok_or_else(|| DeliveryError::later("scoring needs the store"))
    }
}

fn storage(e: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::later(format!("store: {e}"))
}

/// The unit separator between an original value and its unit in a stored row.
const SEP: char = '\u{1f}';

fn to_row(o: &Observation, delivery: &Delivery, seq: usize) -> ObservationRow {
    ObservationRow {
        patient: o.patient.to_string(),
        kind: o.kind.as_str().to_string(),
        value: Some(o.value),
        text: o.text.clone(),
        unit: o.unit.clone(),
        original: format!("{}{SEP}{}", o.original_value, o.original_unit),
        observed_at: o.observed_at,
        status: o.status.as_str().to_string(),
        set_id: Some(o.set_id.clone()),
        message_id: Some(delivery.message_id),
        delivery_id: delivery.id,
        seq: seq as i64,
    }
}

fn from_row(row: &ObservationRow, patient: &PatientKey) -> Option<Observation> {
    let kind = VitalKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str() == row.kind)?;
    let status = [
        ResultStatus::Final,
        ResultStatus::Corrected,
        ResultStatus::Preliminary,
        ResultStatus::Retracted,
        ResultStatus::NoValue,
        ResultStatus::MadeFinal,
        ResultStatus::Other,
    ]
    .into_iter()
    .find(|s| s.as_str() == row.status)?;
    let (original_value, original_unit) =
        row.original.split_once(SEP).unwrap_or((&row.original, ""));
    Some(Observation {
        patient: patient.clone(),
        kind,
        value: row.value.unwrap_or(0.0),
        text: row.text.clone(),
        unit: row.unit.clone(),
        original_value: original_value.to_string(),
        original_unit: original_unit.to_string(),
        observed_at: row.observed_at,
        status,
        set_id: row.set_id.clone().unwrap_or_default(),
        encounter: None,
        source: row.message_id.map(|m| m.to_string()).unwrap_or_default(),
    })
}

/// The facts the alert rules need, read from the score JSON (the DECISIONS.md shape).
fn summary(scores: &serde_json::Value) -> ScoreSummary {
    let total = |s: &str| scores[s]["total"].as_i64();
    let complete = |s: &str| scores[s]["complete"].as_bool().unwrap_or(false);
    let single_three = ["rr", "spo2", "o2", "sbp", "hr", "cns", "temp"]
        .iter()
        .any(|p| scores["news2"][p].as_i64() == Some(3));
    ScoreSummary {
        news2_total: total("news2"),
        news2_single_three: single_three,
        news2_band: scores["news2"]["band"].as_str().map(str::to_string),
        news2_complete: complete("news2"),
        qsofa_total: total("qsofa"),
        qsofa_complete: complete("qsofa"),
        sirs_total: total("sirs"),
        sirs_complete: complete("sirs"),
        wbc_present: scores["sirs"]["wbc"].is_i64(),
    }
}

impl ScoringDestination {
    /// Scores one patient after this delivery's observations were stored; raises alerts.
    async fn score_patient(
        &self,
        store: &Arc<dyn Store>,
        delivery: &Delivery,
        patient: &PatientKey,
        info: Option<&medway_engine::scoring::PatientInfo>,
        name: Option<String>,
        this_message: i64,
    ) -> Result<Vec<String>, DeliveryError> {
        let key = patient.to_string();
        // The widest window (labs, 24 h) before the newest observation of this message.
        let lookback = self.setup.scoring.labs_window.as_micros() as i64 + 60 * 60 * 1_000_000;
        let rows = store
            .patient_observations(&key, this_message - lookback)
            .await
            .map_err(storage)?;
        let newest = rows
            .iter()
            .map(|r| r.observed_at)
            .max()
            .unwrap_or(this_message);
        let mut window = PatientWindow::new(patient.clone());
        if let Some(info) = info {
            window.set_birth_date(info.birth_date);
        }
        for row in rows.iter().filter(|r| r.observed_at >= newest - lookback) {
            if let Some(obs) = from_row(row, patient) {
                // The store was queried by this patient's key: a refusal cannot happen, and if
                // it did the observation would simply not count.
                let _ = window.add(obs);
            }
        }
        let at = window.newest_time().unwrap_or(newest);
        let flags = PatientFlags {
            spo2_scale: store
                .spo2_scale(&key)
                .await
                .map_err(storage)?
                .map(|(scale, set_at)| ScaleFlag { scale, set_at }),
            pregnant: false,
        };
        let scores: Scores = window.score(at, &self.setup.scoring, &flags);
        let json = scores.to_json();
        let summary = summary(&json);
        let score_id = store
            .record_score(&ScoreRow {
                id: 0,
                patient: key.clone(),
                at,
                news2_total: summary.news2_total,
                news2_band: summary.news2_band.clone(),
                qsofa_total: summary.qsofa_total,
                sirs_total: summary.sirs_total,
                complete: summary.news2_complete && summary.qsofa_complete && summary.sirs_complete,
                detail: json.clone(),
                message_id: Some(delivery.message_id),
                delivery_id: Some(delivery.id),
            })
            .await
            .map_err(storage)?;
        let location = info
            .and_then(|i| i.location.clone())
            .map(|l| AlertLocation {
                ward: l.ward,
                room: l.room,
                bed: l.bed,
                facility: l.facility,
            })
            .unwrap_or_default();
        let mut notes = Vec::new();
        for candidate in self.setup.settings.alerts.evaluate(&summary) {
            let latest = store
                .latest_alert(&key, candidate.rule)
                .await
                .map_err(storage)?;
            let decision = decide(&candidate, latest.as_ref(), at);
            let alert = match decision {
                Decision::Suppress => match latest {
                    // Raised by an earlier attempt of this delivery but never handed over.
                    Some(a) if a.dispatched_message_id.is_none() && a.rank == candidate.rank => a,
                    _ => continue,
                },
                Decision::Raise | Decision::Escalate { .. } => {
                    let escalated_from = match &decision {
                        Decision::Escalate { from } => Some(from.clone()),
                        _ => None,
                    };
                    let title = title(candidate.rule, candidate.severity, &json, &location);
                    let mut row = AlertRow {
                        id: 0,
                        patient: key.clone(),
                        rule: candidate.rule.to_string(),
                        severity: candidate.severity.to_string(),
                        rank: candidate.rank,
                        state: "open".into(),
                        title,
                        detail: serde_json::json!({
                            "reasons": candidate.reasons,
                            "scores": json,
                            "location": location,
                        }),
                        score_id: Some(score_id),
                        raised_at: at,
                        suppress_until: at
                            + self.setup.settings.alerts.suppression_minutes * 60 * 1_000_000,
                        updated_at: now_micros(),
                        escalated_from,
                        acknowledged_by: None,
                        acknowledged_at: None,
                        resolved_by: None,
                        resolved_at: None,
                        dispatched_message_id: None,
                    };
                    row.id = store.insert_alert(&row).await.map_err(storage)?;
                    row
                }
            };
            self.dispatch(store, delivery, &alert, &location, name.clone())
                .await?;
            notes.push(format!("alert {} {}", alert.id, alert.severity));
        }
        Ok(notes)
    }

    /// Hands the alert document to the alert channel and records that it did.
    async fn dispatch(
        &self,
        store: &Arc<dyn Store>,
        delivery: &Delivery,
        alert: &AlertRow,
        location: &AlertLocation,
        name: Option<String>,
    ) -> Result<(), DeliveryError> {
        let target = &self.setup.settings.alert_channel;
        let Some(channel) = self.cx.channels.get(target) else {
            return Err(DeliveryError::later(format!(
                "alert channel {target:?} is not running"
            )));
        };
        let document = AlertDocument {
            alert_id: alert.id,
            kind: "clinical".into(),
            rule: alert.rule.clone(),
            severity: alert.severity.clone(),
            state: if alert.escalated_from.is_some() {
                "escalated"
            } else {
                "open"
            }
            .into(),
            escalated_from: alert.escalated_from.clone(),
            title: alert.title.clone(),
            location: location.clone(),
            patient: AlertPatient {
                key: alert.patient.clone(),
                name,
            },
            scores: alert.detail["scores"].clone(),
            reasons: alert.detail["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            observed_at: micros_to_rfc3339(alert.raised_at),
            raised_at: micros_to_rfc3339(now_micros()),
            link: self
                .setup
                .settings
                .link
                .as_ref()
                .map(|l| l.replace("{alert_id}", &alert.id.to_string())),
        };
        let payload = serde_json::to_vec(&document)
            .map_err(|e| DeliveryError::never(format!("alert document: {e}")))?;
        let reply = channel
            .submit(Inbound {
                parent: Some(Lineage {
                    message_id: delivery.message_id,
                    delivery_id: delivery.id,
                }),
                ..Inbound::new(Bytes::from(payload))
            })
            .await;
        let Some(message_id) = reply.message_id.filter(|_| reply.outcome.is_stored_ok()) else {
            return Err(DeliveryError::later(format!(
                "alert {} not taken by {target}: {:?}",
                alert.id, reply.outcome
            )));
        };
        store
            .mark_alert_dispatched(alert.id, message_id)
            .await
            .map_err(storage)
    }
}

/// A FHIR JSON payload starts with `{` (after an optional BOM and whitespace); an ER7 message
/// starts with `MSH`, `FHS` or `BHS`.
fn is_json(payload: &[u8]) -> bool {
    let payload = payload.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(payload);
    payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

impl ScoringDestination {
    /// The observations of a FHIR payload. A scoring observation without a patient
    /// identifier errors the delivery: nothing is scored for a guessed patient.
    fn extract_fhir(&self, delivery: &Delivery) -> Result<Extracted, DeliveryError> {
        let extracted = fhir::extract_fhir_json(
            &delivery.payload,
            &self.setup.codes,
            &self.setup.scoring,
            &self.setup.settings.identifier_systems,
            delivery.control_id.as_deref().unwrap_or_default(),
        )
        .map_err(|e| DeliveryError::never(format!("not a usable FHIR payload: {e}")))?;
        if extracted.patient.is_none()
            && extracted
                .problems
                .iter()
                .any(|p| p.problem == medway_engine::scoring::ProblemKind::MissingPatient)
        {
            return Err(DeliveryError::never(
                "an Observation's subject has no resolvable patient identifier \
                 (subject.identifier, or a Patient entry with an identifier): not scored",
            ));
        }
        Ok(extracted)
    }
}

#[async_trait]
impl Destination for ScoringDestination {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let store = self.store()?;
        let (extracted, name) = if is_json(&delivery.payload) {
            let extracted = self.extract_fhir(delivery)?;
            if extracted.patients.is_empty() {
                return Ok(Response {
                    summary: format!(
                        "no scoring observation in the FHIR payload ({} not scored)",
                        extracted.problems.len()
                    ),
                });
            }
            (extracted, None)
        } else {
            // The kind's label and offset only: the error's text may quote bytes of a
            // segment, and this reaches last_error and the logs.
            let message = Message::parse(delivery.payload.clone()).map_err(|e| {
                DeliveryError::never(format!(
                    "not an HL7 v2 message: {} at byte {}",
                    e.kind.label(),
                    e.offset
                ))
            })?;
            let extracted = extract(&message, &self.setup.codes, &self.setup.scoring);
            if extracted.patient.is_none() {
                return Err(DeliveryError::never(
                    "no patient identifier (PID-3): not scored",
                ));
            }
            let name = message
                .get("PID-5")
                .map(|n| n.into_owned())
                .filter(|n| !n.is_empty());
            (extracted, name)
        };
        let rows: Vec<ObservationRow> = extracted
            .observations
            .iter()
            .enumerate()
            .map(|(i, o)| to_row(o, delivery, i))
            .collect();
        store.record_observations(&rows).await.map_err(storage)?;
        let mut notes = vec![format!(
            "{} observation(s), {} not scored",
            rows.len(),
            extracted.problems.len()
        )];
        for info in &extracted.patients {
            let first = extracted.patient.as_ref() == Some(&info.key);
            // The newest observation of this patient in this message: the store is asked only
            // for the window around it.
            let this_message = extracted
                .observations
                .iter()
                .filter(|o| o.patient == info.key)
                .map(|o| o.observed_at)
                .max()
                .unwrap_or(0);
            notes.extend(
                self.score_patient(
                    store,
                    delivery,
                    &info.key,
                    Some(info),
                    first.then(|| name.clone()).flatten(),
                    this_message,
                )
                .await?,
            );
        }
        Ok(Response {
            summary: notes.join("; "),
        })
    }

    async fn check(&self) -> Result<(), DeliveryError> {
        match self.cx.channels.get(&self.setup.settings.alert_channel) {
            Some(_) => Ok(()),
            None => Err(DeliveryError::later(format!(
                "alert channel {:?} is not running",
                self.setup.settings.alert_channel
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_are_told_from_er7() {
        assert!(is_json(b"{\"resourceType\":\"Observation\"}"));
        assert!(is_json(b"\xEF\xBB\xBF\r\n  {}"));
        assert!(!is_json(b"MSH|^~\\&|A"));
        assert!(!is_json(b""));
        assert!(!is_json(b"[{}]"));
    }

    #[test]
    fn identifier_systems_copied_the_wrong_way_round_is_refused() {
        let spec = ConnectorSpec::inline(
            "scoring",
            toml::from_str::<toml::Table>(
                "alert_channel = \"alerts\"\nidentifier_systems = { HOSP = \"urn:oid:1.2.3\" }",
            )
            .unwrap(),
        );
        let error = ScoringSetup::from_spec(&spec).err().expect("refused");
        assert_eq!(error.key.as_deref(), Some("identifier_systems"));
        assert!(
            error.message.contains("\"HOSP\" is not a URI"),
            "{}",
            error.message
        );
    }

    #[test]
    fn identifier_systems_is_a_setting() {
        let table: toml::Table = toml::from_str(
            "alert_channel = \"alerts\"\nidentifier_systems = { \"urn:oid:1.2.3\" = \"HOSP\" }",
        )
        .unwrap();
        let setup = ScoringSetup::from_spec(&ConnectorSpec::inline("scoring", table)).unwrap();
        assert_eq!(setup.settings.identifier_systems["urn:oid:1.2.3"], "HOSP");
    }
}
