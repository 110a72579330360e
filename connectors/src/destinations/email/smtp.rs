//! The SMTP exchange, step by step over lettre's async connection, so that each recipient's
//! answer is known: lettre's transport gives up on the first refused `RCPT`, and an alert must
//! still reach the other recipients.
//!
//! One idle connection is kept (checked with `NOOP` before reuse); a connection that failed
//! below the SMTP level is closed. Every exchange runs under `timeout`.

use super::settings::TlsMode;
use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use std::sync::Mutex;
use std::time::Duration;

/// Where and how to connect.
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub mode: TlsMode,
    pub tls: Option<TlsParameters>,
    pub hello: ClientId,
    pub credentials: Option<Credentials>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    idle: Mutex<Option<AsyncSmtpConnection>>,
}

/// What the server said about each recipient of one message.
#[derive(Debug, Default)]
pub struct Exchange {
    /// The message was accepted for these (250 after DATA).
    pub accepted: Vec<Address>,
    /// Refused for good (5xx on RCPT, or on DATA for all accepted ones), with the reply.
    pub refused: Vec<(Address, String)>,
    /// Refused for now (4xx on RCPT or DATA), with the reply.
    pub deferred: Vec<(Address, String)>,
}

/// The exchange failed before any recipient could be answered (connect, TLS, EHLO, AUTH,
/// MAIL, a broken connection, the timeout): always worth retrying.
#[derive(Debug)]
pub struct Failure(pub String);

/// Longest server reply kept in a reason.
const MAX_REPLY: usize = 300;

/// A lettre error on one line, bounded.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let mut text = crate::destinations::alert::one_line(&text);
    if text.len() > MAX_REPLY {
        let mut cut = MAX_REPLY;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

impl Smtp {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host: String,
        port: u16,
        mode: TlsMode,
        tls: Option<TlsParameters>,
        hello: ClientId,
        credentials: Option<Credentials>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            host,
            port,
            mode,
            tls,
            hello,
            credentials,
            connect_timeout,
            timeout,
            idle: Mutex::new(None),
        }
    }

    /// `smtp.example:587`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Sends `message` from `from` to `to` in one SMTP transaction.
    pub async fn send(
        &self,
        from: &Address,
        to: &[Address],
        message: &[u8],
    ) -> Result<Exchange, Failure> {
        match tokio::time::timeout(self.timeout, self.send_inner(from, to, message)).await {
            Ok(result) => result,
            Err(_) => Err(Failure(format!(
                "timed out after {} ms ({})",
                self.timeout.as_millis(),
                self.endpoint()
            ))),
        }
    }

    async fn send_inner(
        &self,
        from: &Address,
        to: &[Address],
        message: &[u8],
    ) -> Result<Exchange, Failure> {
        let mut connection = self.connection().await?;
        match transaction(&mut connection, from, to, message).await {
            Ok(exchange) => {
                // Kept for the next send, unless another one already is (then closed politely).
                let spare = {
                    let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                    match *idle {
                        None => {
                            *idle = Some(connection);
                            None
                        }
                        Some(_) => Some(connection),
                    }
                };
                if let Some(mut spare) = spare {
                    let _ = spare.quit().await;
                }
                Ok(exchange)
            }
            Err(Failure(reason)) => {
                connection.abort().await;
                Err(Failure(format!("{reason} ({})", self.endpoint())))
            }
        }
    }

    /// Connects (TLS and authentication included) and keeps the connection for the next send.
    pub async fn check(&self) -> Result<(), Failure> {
        let connection = tokio::time::timeout(self.timeout, self.connection())
            .await
            .map_err(|_| {
                Failure(format!(
                    "timed out after {} ms ({})",
                    self.timeout.as_millis(),
                    self.endpoint()
                ))
            })??;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.is_none() {
            *idle = Some(connection);
        }
        Ok(())
    }

    /// The idle connection if it still answers, else a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, Failure> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut connection) = idle {
            if !connection.has_broken() && connection.test_connected().await {
                return Ok(connection);
            }
            connection.abort().await;
        }
        self.connect()
            .await
            .map_err(|reason| Failure(format!("{reason} ({})", self.endpoint())))
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, String> {
        let implicit = match self.mode {
            TlsMode::Implicit => self.tls.clone(),
            _ => None,
        };
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.connect_timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| format!("cannot connect: {}", describe(&e)))?;
        if self.mode == TlsMode::Starttls {
            let Some(tls) = self.tls.clone() else {
                return Err("TLS is not configured".to_string());
            };
            if !connection.can_starttls() {
                connection.abort().await;
                return Err(
                    "the server does not offer STARTTLS; nothing is sent in clear \
                            (set tls = \"none\" only for a trusted relay)"
                        .to_string(),
                );
            }
            if let Err(e) = connection.starttls(tls, &self.hello).await {
                // Dropped, not aborted: after a failed handshake lettre's stream is gone, and
                // `abort` would write a QUIT into it.
                drop(connection);
                return Err(format!("STARTTLS failed: {}", describe(&e)));
            }
        }
        if let Some(credentials) = &self.credentials
            && let Err(e) = connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
        {
            connection.abort().await;
            return Err(format!(
                "authentication failed: {}; check `username` and `password_file`",
                describe(&e)
            ));
        }
        Ok(connection)
    }
}

/// Whether an error is an SMTP reply (the connection is still usable) or a broken exchange.
fn is_reply(error: &lettre::transport::smtp::Error) -> bool {
    error.is_permanent() || error.is_transient()
}

async fn transaction(
    connection: &mut AsyncSmtpConnection,
    from: &Address,
    to: &[Address],
    message: &[u8],
) -> Result<Exchange, Failure> {
    let mut parameters = Vec::new();
    if !message.is_ascii() {
        if !connection
            .server_info()
            .supports_feature(Extension::EightBitMime)
        {
            return Err(Failure(
                "the message is not 7-bit and the server does not offer 8BITMIME".into(),
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let non_ascii = std::iter::once(from)
        .chain(to)
        .any(|a| !a.to_string().is_ascii());
    if non_ascii {
        if !connection
            .server_info()
            .supports_feature(Extension::SmtpUtfEight)
        {
            return Err(Failure(
                "an address is not ASCII and the server does not offer SMTPUTF8".into(),
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if let Err(e) = connection
        .command(Mail::new(Some(from.clone()), parameters))
        .await
    {
        if is_reply(&e) {
            let _ = connection.command(Rset).await;
        }
        return Err(Failure(format!("MAIL FROM refused: {}", describe(&e))));
    }
    let mut exchange = Exchange::default();
    let mut accepted = Vec::new();
    for address in to {
        match connection.command(Rcpt::new(address.clone(), vec![])).await {
            Ok(_) => accepted.push(address.clone()),
            Err(e) if e.is_permanent() => exchange.refused.push((address.clone(), describe(&e))),
            Err(e) if e.is_transient() => exchange.deferred.push((address.clone(), describe(&e))),
            Err(e) => return Err(Failure(format!("RCPT TO failed: {}", describe(&e)))),
        }
    }
    if accepted.is_empty() {
        let _ = connection.command(Rset).await;
        return Ok(exchange);
    }
    let data = match connection.command(Data).await {
        Ok(_) => connection.message(message).await,
        Err(e) => Err(e),
    };
    match data {
        Ok(_) => exchange.accepted = accepted,
        Err(e) if e.is_permanent() => {
            let reason = format!("message refused: {}", describe(&e));
            exchange
                .refused
                .extend(accepted.into_iter().map(|a| (a, reason.clone())));
        }
        Err(e) if e.is_transient() => {
            let reason = format!("message deferred: {}", describe(&e));
            exchange
                .deferred
                .extend(accepted.into_iter().map(|a| (a, reason.clone())));
        }
        Err(e) => return Err(Failure(format!("DATA failed: {}", describe(&e)))),
    }
    Ok(exchange)
}
